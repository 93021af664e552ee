//! The journey's key steps in Chromium, through nginx balancing three
//! `keyward serve` processes on one PostgreSQL in round robin: every page
//! load and form may land on another instance, and nothing may show it.

use std::time::{Duration, Instant};

use crate::app::PASSWORD;
use crate::balancer::Balanced;
use crate::browser::{drive, Driver};
use crate::journey::{create_key, log_in, prefix_of, row};

/// Calls the API through the balancer; the status.
async fn whoami(lb: &Balanced, key: &str) -> u16 {
    reqwest::Client::new()
        .get(lb.url("/api/v1/whoami"))
        .bearer_auth(key)
        .send()
        .await
        .expect("API call")
        .status()
        .as_u16()
}

#[actix_web::test]
async fn a_user_manages_a_key_through_nginx_in_front_of_three_instances() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let Some(lb) = Balanced::start("a_user_manages_a_key_through_nginx_in_front_of_three_instances").await else {
        return;
    };
    let base = lb.url("");
    drive("balanced", driver, &base, lb, |lb, b| async move {
        // Sign up.
        b.visit("/register").await;
        b.fill("#username", "alice").await;
        b.fill("#email", "alice@example.com").await;
        b.fill("#password", PASSWORD).await;
        b.fill("#password_confirm", PASSWORD).await;
        b.click_through("main form button[type=submit]", ".flash").await;
        assert_eq!(b.path().await, "/keys");
        assert!(b.text(".flash").await.contains("Welcome, alice"));

        // Log out, and back in.
        b.click_through("form[action='/logout'] button", ".flash").await;
        assert_eq!(b.path().await, "/login");
        log_in(&b, "alice", PASSWORD, ".page-head").await;
        assert_eq!(b.path().await, "/keys");
        b.assert_clean_console().await;

        // Create a key and read it off the page.
        let key = create_key(&b, "through the balancer", &["read"], "").await;
        assert!(key.starts_with("kw_") && key.len() > 40, "{key}");

        // Listed, and listed again on the next loads (other instances).
        b.click_through("#done", "table.keys").await;
        let listed = row(&prefix_of(&key));
        for _ in 0..3 {
            assert!(b.text(&listed).await.contains("through the balancer"));
            b.client.refresh().await.expect("reload");
            b.assert_clean_console().await;
        }
        for _ in 0..6 {
            assert_eq!(whoami(&lb, &key).await, 200, "works on every instance");
        }

        // Delete it, after confirming.
        b.click_through(&format!("{listed} a[href$='/delete']"), "main form button.danger")
            .await;
        b.click_through("main form button.danger", ".flash").await;
        assert_eq!(b.path().await, "/keys");
        assert!(b.text(".flash").await.contains("was deleted"));
        assert!(!b.has(&listed).await, "gone from the list");

        // Refused by every instance within a second: six refusals in a row.
        let start = Instant::now();
        let mut in_a_row = 0;
        while in_a_row < 6 {
            in_a_row = if whoami(&lb, &key).await == 401 {
                in_a_row + 1
            } else {
                0
            };
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "still accepted after 1 s; logs:\n{}",
                lb.logs()
            );
        }
        println!("deleted key refused by every instance after {:?}", start.elapsed());
        for _ in 0..3 {
            b.client.refresh().await.expect("reload");
            assert!(!b.has(&listed).await, "gone on every instance");
        }
        b.assert_clean_console().await;
    })
    .await;
}

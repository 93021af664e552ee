//! A key's own page in a real browser: its chart, restrictions set in the
//! form, and a rotation with a grace period, as a user clicks through it.

use crate::app::PASSWORD;
use crate::browser::in_browser;

#[actix_web::test]
async fn a_user_restricts_and_rotates_a_key_on_its_page() {
    in_browser("rotation", |app, b| async move {
        b.visit("/register").await;
        b.fill("#username", "alice").await;
        b.fill("#email", "alice@example.com").await;
        b.fill("#password", PASSWORD).await;
        b.fill("#password_confirm", PASSWORD).await;
        b.click_through("main form button[type=submit]", ".flash").await;

        // A key limited to 600 calls a minute, from anywhere at first.
        b.click_through(".page-head a[href='/keys/new']", "#name").await;
        b.fill("#name", "billing server").await;
        b.click("input[name=scopes][value='read']").await;
        b.fill("#rate_limit_per_minute", "600").await;
        b.click_through("main form button[type=submit]", "#new-key").await;
        let old = b.text("#new-key").await;
        for _ in 0..12 {
            assert_eq!(app.call_api(&old).await, 200);
        }

        // Its page: details, the chart of its calls, and the forms.
        b.visit("/keys").await;
        b.click_through("td.key-name a", "#usage-chart").await;
        assert!(b.text(".key-rate-limit").await.contains("600 calls per minute"));
        b.refresh_until("#usage-summary", |t| t.starts_with("12 accepted calls"))
            .await;
        assert!(b.count("#usage-chart rect.bar").await >= 1, "a bar for this hour");
        assert!(b.text(".key-last-used").await.contains("127.0.0.1"));

        // Restrict it to an office network.
        b.fill("#allowed_ips", "203.0.113.0/24").await;
        b.click_through("main section form button.primary", ".flash").await;
        assert!(b.text(".key-allowed-ips").await.contains("203.0.113.0/24"));
        assert_eq!(app.call_api(&old).await, 403, "127.0.0.1 is not in the office");
        b.fill("#allowed_ips", "").await;
        b.click_through("main section form button.primary", ".flash").await;
        assert_eq!(app.call_api(&old).await, 200);
        b.screenshot_for_docs("key-page").await;

        // Rotate with an hour's grace: a new key, shown once; both work.
        b.fill("#grace_minutes", "60").await;
        b.click_through("form[action$='/rotate'] button[type=submit]", "#new-key")
            .await;
        let new = b.text("#new-key").await;
        assert_ne!(new, old);
        assert!(b.text(".callout.replaces").await.contains("keeps working until"));
        assert_eq!(app.call_api(&old).await, 200);
        assert_eq!(app.call_api(&new).await, 200);

        // The list shows the old key retiring, with a way to end it now.
        b.click_through("#done", "table.keys").await;
        let old_prefix = &old[..old.rfind('_').unwrap()];
        let row = format!("tr[data-key-prefix='{old_prefix}']");
        assert_eq!(
            b.find(&row).await.attr("data-key-state").await.unwrap().as_deref(),
            Some("retiring")
        );
        b.click_through(&format!("{row} form[action$='/retire'] button"), ".flash")
            .await;
        assert_eq!(app.call_api(&old).await, 401);
        assert_eq!(app.call_api(&new).await, 200);
        b.assert_clean_console().await;
    })
    .await;
}

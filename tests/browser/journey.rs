//! A user's whole story, clicking what a user clicks: sign up, log in, create
//! a key and copy it, see it listed and used, delete it after confirming, log
//! out, forget the password, reset it from the emailed link, log in again.

use crate::app::PASSWORD;
use crate::browser::{in_browser, Browser, DESKTOP, MOBILE};

const NEW_PASSWORD: &str = "an even better passphrase";

/// Fills and submits the login form; waits for the answer to show `then`.
pub async fn log_in(b: &Browser, username: &str, password: &str, then: &str) {
    b.fill("#username", username).await;
    b.fill("#password", password).await;
    b.mark_page().await;
    b.click("main form button[type=submit]").await;
    b.wait_for_new_page().await;
    b.find(then).await;
}

/// Creates a key through the form; returns the page's full key.
pub async fn create_key(b: &Browser, name: &str, scopes: &[&str], expires_in_days: &str) -> String {
    b.click_through(".page-head a[href='/keys/new']", "#name").await;
    b.fill("#name", name).await;
    for scope in scopes {
        b.click(&format!("input[name=scopes][value='{scope}']")).await;
    }
    b.fill("#expires_in_days", expires_in_days).await;
    b.click_through("main form button[type=submit]", "#new-key").await;
    b.text("#new-key").await
}

pub fn row(prefix: &str) -> String {
    format!("tr[data-key-prefix='{prefix}']")
}

/// `kw_XXXXXXXX` of a full key.
pub fn prefix_of(key: &str) -> String {
    key[..key.rfind('_').expect("a full key")].to_owned()
}

#[actix_web::test]
async fn a_user_signs_up_manages_a_key_and_resets_a_forgotten_password() {
    in_browser("journey", |app, b| async move {
        // A visitor lands on the login page.
        b.visit("/").await;
        b.wait_for_path("/login").await;
        assert_eq!(b.text("h1").await, "Log in to Keyward");
        b.screenshot_for_docs("login").await;

        // Sign up.
        b.click_through("main a[href='/register']", "#password_confirm").await;
        b.fill("#username", "alice").await;
        b.fill("#email", "alice@example.com").await;
        b.fill("#password", PASSWORD).await;
        b.fill("#password_confirm", PASSWORD).await;
        b.click_through("main form button[type=submit]", ".flash").await;
        assert_eq!(b.path().await, "/keys");
        assert!(b.text(".flash").await.contains("Welcome, alice"));
        assert_eq!(b.text(".empty h2").await, "No keys yet — create your first key");
        assert!(
            b.text(".site-header").await.contains("alice"),
            "the header names the user"
        );

        // Log out, and back in.
        b.click_through("form[action='/logout'] button", ".flash").await;
        assert_eq!(b.path().await, "/login");
        assert_eq!(b.text(".flash").await, "You have been logged out.");
        log_in(&b, "alice", PASSWORD, ".page-head").await;
        assert_eq!(b.path().await, "/keys");
        b.assert_clean_console().await;

        // Create a key: it is shown once, with a warning and a copy button.
        let key = create_key(&b, "billing server", &["read", "keys:read"], "").await;
        assert!(key.starts_with("kw_") && key.len() > 40, "{key}");
        assert!(b.text(".callout.warning").await.contains("will not be shown again"));
        b.click("button[data-copy-target='new-key']").await;
        b.wait_for_text("button[data-copy-target='new-key']", "Copied").await;
        assert_eq!(b.clipboard().await, key, "the clipboard holds the key");
        assert_eq!(b.text(".copy-status").await, "The key is on your clipboard.");
        b.assert_clean_console().await;
        b.screenshot_for_docs("new-key").await;

        // It is listed, never used yet.
        b.click_through("#done", "table.keys").await;
        let billing = row(&prefix_of(&key));
        assert!(b.text(&billing).await.contains("billing server"));
        assert_eq!(b.text(&format!("{billing} .key-last-used")).await, "never");
        assert!(!b.source().await.contains(&key), "the list never shows the key again");

        // A program uses it: the list says so.
        assert_eq!(app.call_api(&key).await, 200);
        b.refresh_until(&format!("{billing} .key-last-used"), |t| t != "never")
            .await;

        // A second key expiring in 3 days is flagged, a third one is not.
        create_key(&b, "CI deploy", &["write"], "3").await;
        b.click_through("#done", "table.keys").await;
        create_key(&b, "analytics export", &["read"], "90").await;
        b.click_through("#done", "table.keys").await;
        let soon = b.text("tr:has(.badge-soon) .key-name").await;
        assert!(soon.starts_with("CI deploy"), "{soon}");
        assert_eq!(b.count("tr[data-key-id]").await, 3);
        b.screenshot_for_docs("keys").await;
        b.viewport(MOBILE, true).await;
        b.screenshot_for_docs("keys-mobile").await;
        b.viewport(DESKTOP, false).await;
        b.color_scheme(true).await;
        b.screenshot_for_docs("keys-dark").await;
        b.color_scheme(false).await;

        // Delete the first key, after confirming.
        b.click_through(&format!("{billing} a[href$='/delete']"), "main form button.danger")
            .await;
        assert!(
            b.text("main").await.contains("billing server"),
            "the page names the key"
        );
        b.click_through("main form button.danger", ".flash").await;
        assert_eq!(b.path().await, "/keys");
        assert!(b.text(".flash").await.contains("was deleted"));
        assert!(!b.has(&billing).await, "the key is gone from the list");
        assert_eq!(b.count("tr[data-key-id]").await, 2);
        assert_eq!(app.call_api(&key).await, 401, "the deleted key is refused");

        // Log out and forget the password.
        b.click_through("form[action='/logout'] button", ".flash").await;
        b.click_through("a[href='/password/forgot']", "#email").await;
        b.fill("#email", "alice@example.com").await;
        b.click_through("main form button[type=submit]", ".success-head").await;
        assert_eq!(b.text("h1").await, "Check your email");

        // The emailed link leads to a form for the new password.
        let link = app.reset_link().await;
        assert!(link.starts_with(&b.url("/password/reset?token=")), "{link}");
        b.client.goto(&link).await.expect("open the emailed link");
        b.assert_clean_console().await;
        b.fill("#password", NEW_PASSWORD).await;
        b.fill("#password_confirm", NEW_PASSWORD).await;
        b.click_through("main form button[type=submit]", ".flash").await;
        assert_eq!(b.path().await, "/login");
        assert!(b.text(".flash").await.contains("Log in with your new password"));

        // The old password no longer works; the new one does.
        log_in(&b, "alice", PASSWORD, "#login-error").await;
        assert!(b.text("#login-error").await.contains("Incorrect username or password"));
        b.assert_clean_console_but_status(401).await;
        log_in(&b, "alice", NEW_PASSWORD, "table.keys").await;
        assert_eq!(b.path().await, "/keys");
        b.assert_clean_console().await;
        assert_eq!(b.count("tr[data-key-id]").await, 2, "the other keys are still there");
    })
    .await;
}

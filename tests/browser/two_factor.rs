//! Two-factor authentication in a real browser: enrolment from the QR
//! page (the test computes the codes, as an authenticator app would) and
//! the second step of the next login.

use crate::app::PASSWORD;
use crate::browser::in_browser;
use keyward::accounts::totp;

fn unix() -> u64 {
    keyward::time::now().and_utc().timestamp() as u64
}

#[actix_web::test]
async fn a_user_turns_on_two_factor_and_logs_in_with_a_code() {
    in_browser("two_factor", |app, b| async move {
        // Held to the end: the app's data directory lives as long as it.
        let _app = app;
        b.visit("/register").await;
        b.fill("#username", "alice").await;
        b.fill("#email", "alice@example.com").await;
        b.fill("#password", PASSWORD).await;
        b.fill("#password_confirm", PASSWORD).await;
        b.click_through("main form button[type=submit]", ".flash").await;

        b.visit("/account").await;
        b.click_through("a[href='/account/2fa']", "#totp-secret").await;
        assert!(b.has(".qr svg").await, "a QR code to scan");
        let secret = totp::from_base32(&b.text("#totp-secret").await).expect("a base32 secret");
        b.fill("#code", &totp::code_at(&secret, unix())).await;
        b.fill("#password", PASSWORD).await;
        b.click_through("main form button[type=submit]", "#recovery-codes")
            .await;
        assert_eq!(b.count("#recovery-codes li").await, 10);
        b.click_through("a.button.primary", "[data-2fa='on']").await;

        // Log out; the password alone now leads to the second step.
        b.click_through("form[action='/logout'] button", ".flash").await;
        b.fill("#username", "alice").await;
        b.fill("#password", PASSWORD).await;
        b.click_through("main form button[type=submit]", "#code").await;
        assert_eq!(b.path().await, "/login/2fa");
        b.fill("#code", "000000").await;
        b.mark_page().await;
        b.click("main form button[type=submit]").await;
        b.wait_for_new_page().await;
        assert!(b.text(".form-error").await.contains("not right"));
        b.assert_clean_console_but_status(401).await;
        b.fill("#code", &totp::code_at(&secret, unix() + 30)).await;
        b.click_through("main form button[type=submit]", ".page-head").await;
        assert_eq!(b.path().await, "/keys");
        b.assert_clean_console().await;
    })
    .await;
}

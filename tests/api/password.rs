//! Password reset by email, password changes, sessions and login throttling.

use std::time::Duration;

use crate::helpers::*;
use crate::mailbox::*;
use diesel::prelude::*;
use keyward::db::schema::password_reset_tokens;
use reqwest::StatusCode;

const NEW_PASSWORD: &str = "an entirely new passphrase";

fn outbox(app: &TestApp) -> std::path::PathBuf {
    app.dir.path().join("outbox")
}

async fn forgot(app: &TestApp, client: &reqwest::Client, email: &str) -> reqwest::Response {
    app.post_form_with(client, "/password/forgot", &[("email", email)])
        .await
}

async fn reset(app: &TestApp, client: &reqwest::Client, token: &str, password: &str) -> reqwest::Response {
    app.post_form_with(
        client,
        "/password/reset",
        &[("token", token), ("password", password), ("password_confirm", password)],
    )
    .await
}

/// Registers alice in the default browser, asks for a reset, returns the link.
async fn alice_asks_for_a_reset(app: &TestApp) -> String {
    app.signed_up("alice").await;
    let res = forgot(app, &browser(), "alice@example.com").await;
    assert_eq!(res.status(), StatusCode::OK);
    let mails = wait_for_messages(&outbox(app), 1).await;
    let mail = mails
        .iter()
        .find(|m| m.contains("Reset your Keyward password"))
        .expect("a reset mail");
    reset_link(mail).expect("a link in the mail")
}

#[actix_web::test]
async fn a_forgotten_password_is_reset_through_the_mailed_link() {
    let app = spawn_app().await;
    let link = alice_asks_for_a_reset(&app).await;
    assert!(
        link.starts_with(&format!("{}/password/reset?token=", app.address)),
        "the link is built from the configured base URL: {link}"
    );
    let token = token_of(&link);
    assert!(token.len() >= 22, "at least 128 bits");

    let other = browser();
    let page = app.get_with(&other, &format!("/password/reset?token={token}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let res = reset(&app, &other, &token, NEW_PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login");

    // The reset did not log this browser in.
    let keys = app.get_with(&other, "/keys").await;
    assert_eq!(keys.status(), StatusCode::SEE_OTHER);
    // The new password works, the old one does not.
    assert_eq!(
        app.login_with(&browser(), "alice", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login_with(&browser(), "alice", NEW_PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[actix_web::test]
async fn the_reset_mail_goes_through_a_real_smtp_server() {
    let Some(smtp) = SmtpServer::start() else { return };
    let url = format!("smtp://127.0.0.1:{}", smtp.port);
    let app = spawn_app_with(|s| s.smtp_url = Some(url.to_string().into())).await;
    app.signed_up("alice").await;

    let res = forgot(&app, &browser(), "alice@example.com").await;
    assert_eq!(res.status(), StatusCode::OK);
    let mails = wait_for_messages(&smtp.new_mail_dir(), 1).await;
    let link = reset_link(mails.first().expect("the SMTP server received the mail")).expect("link");
    assert!(messages_in(&outbox(&app)).is_empty(), "nothing went to the outbox");

    let res = reset(&app, &browser(), &token_of(&link), NEW_PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.login_with(&browser(), "alice", NEW_PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    // The change notice follows through the same server.
    let mails = wait_for_messages(&smtp.new_mail_dir(), 2).await;
    assert!(mails.iter().any(|m| m.contains("Your Keyward password was changed")));
}

#[actix_web::test]
async fn an_unknown_email_gets_the_same_answer_and_no_mail() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let known = forgot(&app, &browser(), "alice@example.com").await;
    let unknown = forgot(&app, &browser(), "nobody@example.com").await;
    assert_eq!(known.status(), unknown.status());
    let (known, unknown) = (known.text().await.unwrap(), unknown.text().await.unwrap());
    assert_eq!(known, unknown);
    let mails = wait_for_messages(&outbox(&app), 1).await;
    app.state.mailer.idle().await;
    assert_eq!(
        messages_in(&outbox(&app)).len(),
        1,
        "only the existing account got mail: {mails:?}"
    );
}

#[actix_web::test]
async fn the_link_uses_the_base_url_whatever_the_host_header_says() {
    let app = spawn_app_with(|s| s.base_url = "https://keys.example.com".into()).await;
    // Under https the cookie is Secure, so a plain-http test client cannot
    // keep the session; the form is posted with the cookie by hand instead.
    let client = browser();
    let page = app.get_with(&client, "/password/forgot").await;
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("__Host-keyward="), "{cookie}");
    let token = csrf_in(&page.text().await.unwrap());
    let reg_page = reqwest::Client::new().get(app.url("/register")).send().await.unwrap();
    let reg_cookie = reg_page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let reg_token = csrf_in(&reg_page.text().await.unwrap());
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(app.url("/register"))
        .header("cookie", reg_cookie)
        .form(&[
            ("csrf_token", reg_token.as_str()),
            ("username", "alice"),
            ("email", "alice@example.com"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    let res = reqwest::Client::new()
        .post(app.url("/password/forgot"))
        .header("host", "evil.test")
        .header("x-forwarded-host", "evil.test")
        .header("x-forwarded-proto", "http")
        .header("cookie", cookie)
        .form(&[("csrf_token", token.as_str()), ("email", "alice@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mails = wait_for_messages(&outbox(&app), 1).await;
    let link = reset_link(&mails[0]).unwrap();
    assert!(
        link.starts_with("https://keys.example.com/password/reset?token="),
        "{link}"
    );
    assert!(!mails[0].contains("evil.test"));
}

#[actix_web::test]
async fn a_reset_link_works_only_once() {
    let app = spawn_app().await;
    let token = token_of(&alice_asks_for_a_reset(&app).await);
    assert_eq!(
        reset(&app, &browser(), &token, NEW_PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );

    let again = reset(&app, &browser(), &token, "yet another passphrase").await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert!(again.text().await.unwrap().contains("This link does not work"));
    assert_eq!(
        app.get(&format!("/password/reset?token={token}")).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.login_with(&browser(), "alice", NEW_PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[actix_web::test]
async fn an_expired_reset_link_is_refused() {
    let app = spawn_app().await;
    let token = token_of(&alice_asks_for_a_reset(&app).await);
    // Age every token past its 30 minutes instead of waiting.
    let mut conn = app.state.pool.get().unwrap();
    diesel::update(password_reset_tokens::table)
        .set(password_reset_tokens::expires_at.eq(keyward::time::now() - chrono::Duration::minutes(1)))
        .execute(&mut *conn)
        .unwrap();

    assert_eq!(
        app.get(&format!("/password/reset?token={token}")).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        reset(&app, &browser(), &token, NEW_PASSWORD).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.login_with(&browser(), "alice", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[actix_web::test]
async fn of_two_concurrent_redemptions_exactly_one_succeeds() {
    let app = spawn_app().await;
    let token = token_of(&alice_asks_for_a_reset(&app).await);
    let (a, b) = (browser(), browser());
    let (ra, rb) = futures_join(
        reset(&app, &a, &token, "first new passphrase"),
        reset(&app, &b, &token, "second new passphrase"),
    )
    .await;
    let statuses = [ra.status(), rb.status()];
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::SEE_OTHER).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::BAD_REQUEST).count(),
        1,
        "{statuses:?}"
    );
    let first = app
        .login_with(&browser(), "alice", "first new passphrase")
        .await
        .status();
    let second = app
        .login_with(&browser(), "alice", "second new passphrase")
        .await
        .status();
    assert!((first == StatusCode::SEE_OTHER) ^ (second == StatusCode::SEE_OTHER));
}

async fn futures_join<A: std::future::Future, B: std::future::Future>(a: A, b: B) -> (A::Output, B::Output) {
    tokio::join!(a, b)
}

#[actix_web::test]
async fn a_newer_request_replaces_the_older_link() {
    let app = spawn_app().await;
    let old = token_of(&alice_asks_for_a_reset(&app).await);
    assert_eq!(
        forgot(&app, &browser(), "alice@example.com").await.status(),
        StatusCode::OK
    );
    let mails = wait_for_messages(&outbox(&app), 2).await;
    let new = token_of(&reset_link(mails.last().unwrap()).unwrap());
    assert_ne!(old, new);
    assert_eq!(
        reset(&app, &browser(), &old, NEW_PASSWORD).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        reset(&app, &browser(), &new, NEW_PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[actix_web::test]
async fn a_reset_ends_other_sessions_keeps_keys_and_sends_a_notice() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;
    let laptop = browser();
    assert_eq!(
        app.login_with(&laptop, "alice", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(app.get_with(&laptop, "/keys").await.status(), StatusCode::OK);

    assert_eq!(
        forgot(&app, &browser(), "alice@example.com").await.status(),
        StatusCode::OK
    );
    // The first mail tells of the new key; the second holds the link.
    let mails = wait_for_messages(&outbox(&app), 2).await;
    let link = mails.iter().find_map(|m| reset_link(m)).unwrap();
    assert_eq!(
        reset(&app, &browser(), &token_of(&link), NEW_PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );

    assert_eq!(
        app.get_with(&laptop, "/keys").await.status(),
        StatusCode::SEE_OTHER,
        "laptop session ended"
    );
    assert_eq!(
        app.get("/keys").await.status(),
        StatusCode::SEE_OTHER,
        "first session ended"
    );
    assert_eq!(
        app.api_get("/api/v1/whoami", &key).await.status(),
        StatusCode::OK,
        "keys keep working"
    );
    // The new key's notice, the reset link, and the change notice.
    let mails = wait_for_messages(&outbox(&app), 3).await;
    assert!(mails.iter().any(|m| m.contains("Your Keyward password was changed")));
}

#[actix_web::test]
async fn changing_the_password_ends_other_sessions_but_not_this_one() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let laptop = browser();
    app.login_with(&laptop, "alice", PASSWORD).await;

    let wrong = app
        .post_form(
            "/account/password",
            &[
                ("current_password", "not my password"),
                ("new_password", NEW_PASSWORD),
                ("new_password_confirm", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.text().await.unwrap().contains("current password is not correct"));
    assert_eq!(
        app.get_with(&laptop, "/keys").await.status(),
        StatusCode::OK,
        "nothing changed yet"
    );

    let ok = app
        .post_form(
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
                ("new_password_confirm", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.get("/keys").await.status(), StatusCode::OK, "this session stays");
    assert_eq!(
        app.get_with(&laptop, "/keys").await.status(),
        StatusCode::SEE_OTHER,
        "the other one ends"
    );
    assert_eq!(
        app.login_with(&browser(), "alice", NEW_PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let mails = wait_for_messages(&outbox(&app), 1).await;
    assert!(mails.iter().any(|m| m.contains("Your Keyward password was changed")));
}

#[actix_web::test]
async fn a_weak_new_password_is_refused_with_a_message() {
    let app = spawn_app().await;
    let token = token_of(&alice_asks_for_a_reset(&app).await);
    let res = reset(&app, &browser(), &token, "password1").await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("most common passwords"));
    // The link still works after a refused attempt.
    assert_eq!(
        reset(&app, &browser(), &token, NEW_PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[actix_web::test]
async fn repeated_failed_logins_are_slowed_down_and_then_let_through() {
    // A lock-out far longer than the test takes, however slow the machine
    // (each failure costs an Argon2 hash): the clock is moved, not waited on.
    let app = spawn_app_with(|s| s.login_lockout_seconds = 60).await;
    app.signed_up("alice").await;
    let attacker = browser();
    for _ in 0..5 {
        assert_eq!(
            app.login_with(&attacker, "alice", "wrong guess 123").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let throttled = app.login_with(&attacker, "alice", PASSWORD).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = throttled.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert!(throttled.text().await.unwrap().contains("Too many failed attempts"));

    app.state.clock.advance(Duration::from_secs(61));
    assert_eq!(
        app.login_with(&browser(), "alice", PASSWORD).await.status(),
        StatusCode::SEE_OTHER,
        "lifted"
    );
}

#[actix_web::test]
async fn reset_requests_for_one_account_are_rate_limited() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    for _ in 0..5 {
        assert_eq!(
            forgot(&app, &browser(), "alice@example.com").await.status(),
            StatusCode::OK
        );
    }
    app.state.mailer.idle().await;
    assert_eq!(
        messages_in(&outbox(&app)).len(),
        3,
        "at most 3 mails per account per 15 minutes"
    );
}

#[actix_web::test]
async fn an_idle_session_ends() {
    let app = spawn_app_with(|s| s.session_idle_minutes = 1.0).await;
    app.signed_up("alice").await;
    assert_eq!(app.get("/keys").await.status(), StatusCode::OK);
    app.state.clock.advance(Duration::from_secs(50));
    assert_eq!(
        app.get("/keys").await.status(),
        StatusCode::OK,
        "a visit within the timeout"
    );
    app.state.clock.advance(Duration::from_secs(61));
    assert_eq!(app.get("/keys").await.status(), StatusCode::SEE_OTHER);
}

#[actix_web::test]
async fn a_session_ends_at_its_maximum_age_even_when_used() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    assert_eq!(app.get("/keys").await.status(), StatusCode::OK);
    // Make the server-side record 13 hours old (the limit is 12).
    let mut conn = app.state.pool.get().unwrap();
    diesel::update(keyward::db::schema::user_sessions::table)
        .set(keyward::db::schema::user_sessions::created_at.eq(keyward::time::now() - chrono::Duration::hours(13)))
        .execute(&mut *conn)
        .unwrap();
    assert_eq!(app.get("/keys").await.status(), StatusCode::SEE_OTHER);
}

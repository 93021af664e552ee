//! Account security: two-factor login, recent authentication, email
//! change, sessions and account deletion.

use diesel::prelude::*;
use keyward::accounts::totp;
use keyward::db::schema::{user_sessions, users};
use reqwest::{Client, StatusCode};

use crate::helpers::*;
use crate::mailbox::{wait_for_messages, SmtpServer};

fn unix() -> u64 {
    keyward::time::now().and_utc().timestamp() as u64
}

/// Turns 2FA on for the default browser's user; returns the secret and the
/// recovery codes.
async fn enrol(app: &TestApp) -> (Vec<u8>, Vec<String>) {
    let page = app.get_html("/account/2fa").await;
    let secret_text = text_of(&page, "code#totp-secret").unwrap();
    let secret = totp::from_base32(&secret_text).expect("a base32 secret");
    assert!(page.contains("<svg"), "a QR code");
    let res = app
        .post_form(
            "/account/2fa",
            &[("code", &totp::code_at(&secret, unix())), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    let codes = texts_of(&html, "ul#recovery-codes code");
    (secret, codes)
}

async fn second_step(app: &TestApp, client: &Client, code: &str) -> reqwest::Response {
    let page = app.get_with(client, "/login/2fa").await.text().await.unwrap();
    let token = csrf_in(&page);
    client
        .post(app.url("/login/2fa"))
        .form(&[("code", code), ("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap()
}

#[actix_web::test]
async fn two_factor_from_enrolment_to_disabling() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let (secret, codes) = enrol(&app).await;
    assert_eq!(codes.len(), 10);
    assert!(app.get_html("/account").await.contains(r#"data-2fa="on""#));
    let stored: Option<Vec<u8>> = users::table.select(users::totp_secret).first(&mut *app.db()).unwrap();
    let stored = stored.unwrap();
    assert!(
        !stored.windows(secret.len()).any(|w| w == secret.as_slice()),
        "sealed, not plain"
    );

    // The password alone is not enough.
    let browser2 = browser();
    let res = app.login_with(&browser2, "alice", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login/2fa");
    assert!(!app.is_logged_in(&browser2).await);

    // Wrong, malformed: refused.
    for bad in ["000000", "12345", "abcdef", "1234567"] {
        let res = second_step(&app, &browser2, bad).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{bad}");
    }
    // The next step's code (the current one was spent on enrolment).
    let code = totp::code_at(&secret, unix() + 30);
    let res = second_step(&app, &browser2, &code).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(app.is_logged_in(&browser2).await);

    // The same code again, from another browser: refused.
    let browser3 = browser();
    app.login_with(&browser3, "alice", PASSWORD).await;
    assert_eq!(
        second_step(&app, &browser3, &code).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // A recovery code works, once.
    assert_eq!(
        second_step(&app, &browser3, &codes[0]).await.status(),
        StatusCode::SEE_OTHER
    );
    let browser4 = browser();
    app.login_with(&browser4, "alice", PASSWORD).await;
    assert_eq!(
        second_step(&app, &browser4, &codes[0]).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // A second enrolment while on: refused.
    let res = app
        .post_form("/account/2fa", &[("code", "123456"), ("password", PASSWORD)])
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);

    // Off, with the password and a code.
    let res = app
        .post_form("/account/2fa/disable", &[("password", PASSWORD), ("code", "999999")])
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .post_form("/account/2fa/disable", &[("password", PASSWORD), ("code", &codes[1])])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = app.login_with(&browser(), "alice", PASSWORD).await;
    assert_eq!(location(&res), "/keys", "the password alone again");

    let events = app.get_html("/account/activity").await;
    assert!(events.contains(r#"data-event="totp_enabled""#) && events.contains(r#"data-event="totp_disabled""#));
}

#[actix_web::test]
async fn enrolment_needs_the_password_and_a_valid_code() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let page = app.get_html("/account/2fa").await;
    let secret = totp::from_base32(&text_of(&page, "code#totp-secret").unwrap()).unwrap();

    for (code, password) in [
        (totp::code_at(&secret, unix()), "wrong password"),
        ("000000".to_owned(), PASSWORD),
        ("12ab56".to_owned(), PASSWORD),
    ] {
        let res = app
            .post_form("/account/2fa", &[("code", &code), ("password", password)])
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert!(app.get_html("/account").await.contains(r#"data-2fa="off""#));
    // The secret shown stays the same while enrolling.
    let again = app.get_html("/account/2fa").await;
    assert_eq!(text_of(&again, "code#totp-secret").unwrap(), totp::base32(&secret));
}

/// Makes the default browser's session look older than the confirm window.
fn age_session(app: &TestApp) {
    let old = keyward::time::now() - chrono::Duration::hours(1);
    diesel::update(user_sessions::table)
        .set(user_sessions::authenticated_at.eq(old))
        .execute(&mut *app.db())
        .unwrap();
}

#[actix_web::test]
async fn a_stale_session_confirms_its_password_before_creating_a_key() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    age_session(&app);

    let res = app.get("/keys/new").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/confirm?next=%2Fkeys%2Fnew");
    let res = app.post_form("/keys", &[("name", "ci")]).await;
    assert_eq!(location(&res), "/confirm?next=%2Fkeys%2Fnew");
    assert_eq!(app.key_count(), 0);

    let res = app
        .post_form("/confirm", &[("password", "wrong password"), ("next", "/keys/new")])
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app
        .post_form("/confirm", &[("password", PASSWORD), ("next", "/keys/new")])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/keys/new", "back where the user was");

    app.create_key("ci", &[]).await;
    assert_eq!(app.key_count(), 1);
    // Confirmed a while ago is not recent either.
    age_session(&app);
    let (status, _) = app.create_key_with(&app.client, "x", &[], "").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(app.key_count(), 1);
}

#[actix_web::test]
async fn deleting_a_key_never_needs_a_fresh_password() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;
    age_session(&app);

    let res = app.post_form(&format!("/keys/{}/delete", id_of(&key)), &[]).await;

    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/keys");
    assert_eq!(app.key_count(), 0);
}

#[actix_web::test]
async fn an_email_change_happens_through_the_link_and_the_old_address_is_told() {
    let Some(smtp) = SmtpServer::start() else { return };
    let url = format!("smtp://127.0.0.1:{}", smtp.port);
    let app = spawn_app_with(|s| s.smtp_url = Some(url.to_string().into())).await;
    app.signed_up("alice").await;

    let res = app
        .post_form(
            "/account/email",
            &[("email", "alice@new.example"), ("password", "wrong password")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = app
        .post_form(
            "/account/email",
            &[("email", "alice@new.example"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let mails = wait_for_messages(&smtp.new_mail_dir(), 1).await;
    let mail = mails
        .iter()
        .find(|m| m.contains("To: alice@new.example"))
        .expect("a mail to the new address");
    let start = mail.find("http").unwrap();
    let link: String = mail[start..].chars().take_while(|c| !c.is_whitespace()).collect();
    // The link names the configured base URL; the path is what matters here.
    let path = link[link.find("/account/").unwrap()..].to_owned();
    assert!(path.starts_with("/account/email/confirm?token="), "{path}");
    assert!(
        app.get_html("/account").await.contains("alice@example.com"),
        "nothing changed yet"
    );

    // Someone else's session cannot use it.
    let bob = app.new_user("bob").await;
    assert_eq!(app.get_with(&bob, &path).await.status(), StatusCode::BAD_REQUEST);

    let res = app.get(&path).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(app.get_html("/account").await.contains("alice@new.example"));
    let mails = wait_for_messages(&smtp.new_mail_dir(), 2).await;
    assert!(mails.iter().any(|m| m.contains("To: alice@example.com")
        && m.contains("was changed from alice@example.com to alice@new.example")));
    assert_eq!(app.get(&path).await.status(), StatusCode::BAD_REQUEST, "works once");
}

#[actix_web::test]
async fn a_session_revoked_from_another_browser_is_refused_at_once() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let laptop = browser();
    app.login_with(&laptop, "alice", PASSWORD).await;
    assert!(app.is_logged_in(&laptop).await);

    let page = app.get_html("/account/sessions").await;
    let ids = attrs_of(&page, "[data-session-id]", "data-session-id");
    assert_eq!(ids.len(), 2);
    let laptop_id = ids
        .iter()
        .find(|id| !page.contains(&format!(r#"data-session-id="{id}" data-current="true""#)))
        .unwrap()
        .clone();

    // Another user cannot end it.
    let bob = app.new_user("bob").await;
    let res = app
        .post_form_with(&bob, &format!("/account/sessions/{laptop_id}/revoke"), &[])
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(app.is_logged_in(&laptop).await);

    let res = app
        .post_form(&format!("/account/sessions/{laptop_id}/revoke"), &[])
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(!app.is_logged_in(&laptop).await);
    assert!(app.is_logged_in(&app.client).await, "this one goes on");

    // And all others at once.
    let phone = browser();
    app.login_with(&phone, "alice", PASSWORD).await;
    app.post_form("/account/sessions/revoke-others", &[]).await;
    assert!(!app.is_logged_in(&phone).await);
    assert!(app.is_logged_in(&app.client).await);
}

#[actix_web::test]
async fn deleting_the_account_removes_user_keys_and_sessions() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;
    let laptop = browser();
    app.login_with(&laptop, "alice", PASSWORD).await;

    let res = app
        .post_form("/account/delete", &[("password", PASSWORD), ("confirm", "alicia")])
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.user_count(), 1);
    let res = app
        .post_form(
            "/account/delete",
            &[("password", "wrong password"), ("confirm", "alice")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.api_get("/api/v1/whoami", &key).await.status(), StatusCode::OK);

    let res = app
        .post_form("/account/delete", &[("password", PASSWORD), ("confirm", "alice")])
        .await;

    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.user_count(), 0);
    assert_eq!(app.key_count(), 0);
    let sessions: i64 = user_sessions::table.count().get_result(&mut *app.db()).unwrap();
    assert_eq!(sessions, 0);
    assert_eq!(
        app.api_get("/api/v1/whoami", &key).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(!app.is_logged_in(&laptop).await);
    let mails = wait_for_messages(&app.dir.path().join("outbox"), 2).await;
    assert!(mails
        .iter()
        .any(|m| m.contains("was deleted") && m.contains("To: alice@example.com")));
}

#[actix_web::test]
async fn wrong_codes_are_throttled_even_between_right_passwords() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    enrol(&app).await;

    let mut statuses = Vec::new();
    for _ in 0..7 {
        let res = app
            .post_form("/account/2fa/disable", &[("password", PASSWORD), ("code", "000000")])
            .await;
        statuses.push(res.status());
    }

    assert_eq!(statuses[0], StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(statuses[6], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    assert!(app.get_html("/account").await.contains(r#"data-2fa="on""#));
}

#[actix_web::test]
async fn a_session_revoked_on_one_instance_is_refused_on_another_at_once() {
    let Some(url) = crate::pg::fresh_database_or_skip("a_session_revoked_on_one_instance_is_refused_on_another") else {
        return;
    };
    let a = spawn_app_with(|s| s.database_url = Some(url.clone().into())).await;
    let b = spawn_app_with(|s| s.database_url = Some(url.clone().into())).await;
    a.signed_up("alice").await;
    let laptop = browser();
    a.login_with(&laptop, "alice", PASSWORD).await;
    assert!(b.is_logged_in(&laptop).await, "the laptop's session works on B");

    let page = a.get_html("/account/sessions").await;
    let laptop_id = attrs_of(
        &page,
        r#"[data-session-id]:not([data-current="true"])"#,
        "data-session-id",
    )
    .into_iter()
    .next()
    .expect("the other session");
    let res = a.post_form(&format!("/account/sessions/{laptop_id}/revoke"), &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    assert!(!b.is_logged_in(&laptop).await, "B refuses it at once");
}

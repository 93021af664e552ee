//! docs/http.md, "Bad input": a clear 4xx, never a 500 or a crash, and nothing changes.

use crate::helpers::*;
use keyward::keys::format::{self, KeyTag};
use reqwest::{Client, StatusCode};

const FORM: &str = "application/x-www-form-urlencoded";

/// Raw form body `body` plus `client`'s CSRF token, sent as a form.
async fn post_raw(app: &TestApp, client: &Client, path: &str, body: &str) -> reqwest::Response {
    let token = app.csrf_for(client).await;
    client
        .post(app.url(path))
        .header("content-type", FORM)
        .body(format!("{body}&csrf_token={token}"))
        .send()
        .await
        .expect("POST")
}

#[actix_web::test]
async fn an_oversized_login_form_is_refused_as_too_large() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let browser = browser();
    let padding = "x".repeat(1024 * 1024);

    let res = post_raw(
        &app,
        &browser,
        "/login",
        &format!("username=alice&password={PASSWORD}&pad={padding}"),
    )
    .await;

    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!app.is_logged_in(&browser).await);
}

#[actix_web::test]
async fn an_oversized_key_form_is_refused_and_creates_nothing() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let name = "n".repeat(1024 * 1024);

    let res = post_raw(&app, &app.client, "/keys", &format!("name={name}&expires_in_days=")).await;

    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.key_count(), 0);
}

#[actix_web::test]
async fn invalid_utf8_in_a_login_form_is_a_bad_request() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let browser = browser();

    let res = post_raw(&app, &browser, "/login", &format!("username=%FF&password={PASSWORD}")).await;

    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(!app.is_logged_in(&browser).await);
}

#[actix_web::test]
async fn invalid_utf8_in_a_key_form_is_a_bad_request_and_creates_nothing() {
    let app = spawn_app().await;
    app.signed_up("alice").await;

    let res = post_raw(&app, &app.client, "/keys", "name=ci%FF%FE&scopes=read&expires_in_days=").await;

    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.key_count(), 0);
}

#[actix_web::test]
async fn a_key_form_with_a_name_sent_twice_is_a_bad_request_and_creates_nothing() {
    let app = spawn_app().await;
    app.signed_up("alice").await;

    let res = post_raw(
        &app,
        &app.client,
        "/keys",
        "name=one&name=two&scopes=read&expires_in_days=",
    )
    .await;

    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.key_count(), 0);
}

#[actix_web::test]
async fn a_form_without_a_csrf_token_is_forbidden_before_its_fields_are_read() {
    let app = spawn_app().await;
    app.signed_up("alice").await;

    let res = app
        .client
        .post(app.url("/keys"))
        .header("content-type", FORM)
        .body("name=ci&scopes=read&expires_in_days=")
        .send()
        .await
        .expect("POST");

    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.key_count(), 0);
}

#[actix_web::test]
async fn invalid_utf8_in_a_registration_creates_no_account() {
    let app = spawn_app().await;

    let res = post_raw(
        &app,
        &app.client,
        "/register",
        &format!("username=bob%C3%28&email=bob%40example.com&password={PASSWORD}&password_confirm={PASSWORD}"),
    )
    .await;

    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.user_count(), 0);
}

#[actix_web::test]
async fn a_very_long_api_key_header_is_refused_without_an_error() {
    let app = spawn_app().await;
    let garbage = "k".repeat(10 * 1024);

    let x_api_key = Client::new()
        .get(app.url("/api/v1/whoami"))
        .header("X-API-Key", &garbage)
        .send()
        .await
        .unwrap();
    let bearer = app.api_get("/api/v1/whoami", &garbage).await;

    assert!(x_api_key.status().is_client_error(), "{}", x_api_key.status());
    assert!(bearer.status().is_client_error(), "{}", bearer.status());
}

#[actix_web::test]
async fn a_very_long_cookie_does_not_break_the_login_page() {
    let app = spawn_app().await;
    let visitor = browser_with_cookie(&format!("keyward={}", "A".repeat(10 * 1024)));

    let res = app.get_with(&visitor, "/login").await;

    assert!(!res.status().is_server_error(), "{}", res.status());
}

#[actix_web::test]
async fn garbage_keys_of_every_shape_are_refused() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let real = app.create_key("ci", &["keys:read", "keys:write"]).await;
    let other_tag = format::generate(&KeyTag::parse("zz").unwrap()).key.expose().to_owned();
    let cases: Vec<String> = vec![
        "x".into(),
        "kw_".into(),
        "kw__".into(),
        "' OR 1=1 --".into(),
        "kw_abcdefgh_".to_owned() + &"!".repeat(38),
        format!("{real}x"),
        real[..real.len() - 1].to_owned(),
        real.to_uppercase(),
        real.replacen('_', "-", 2),
        format!("{real} {real}"),
        format!("{}%00{}", &real[..20], &real[20..]),
        format!("{}_{}", prefix_of(&real), "0".repeat(38)),
        other_tag,
        "Bearer ".to_owned() + &real,
        "k".repeat(100_000 / 20),
    ];

    for bad in &cases {
        let bearer = Client::new()
            .get(app.url("/api/v1/keys"))
            .header("Authorization", format!("Bearer {bad}"))
            .send()
            .await
            .unwrap();
        let x_api_key = Client::new()
            .get(app.url("/api/v1/keys"))
            .header("X-API-Key", bad.as_str())
            .send()
            .await
            .unwrap();

        assert_eq!(bearer.status(), StatusCode::UNAUTHORIZED, "Bearer {bad:?}");
        assert_eq!(x_api_key.status(), StatusCode::UNAUTHORIZED, "X-API-Key {bad:?}");
    }
    let wrong_scheme = Client::new()
        .get(app.url("/api/v1/keys"))
        .header("Authorization", format!("Basic {real}"))
        .send()
        .await
        .unwrap();
    let empty = Client::new()
        .get(app.url("/api/v1/keys"))
        .header("Authorization", "Bearer ")
        .send()
        .await
        .unwrap();
    let not_utf8 = Client::new()
        .get(app.url("/api/v1/keys"))
        .header(
            "X-API-Key",
            reqwest::header::HeaderValue::from_bytes(b"kw_\xff\xfe").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_scheme.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(empty.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(not_utf8.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.key_count(), 1);
    assert_eq!(app.api_get("/api/v1/whoami", &real).await.status(), StatusCode::OK);
}

#[actix_web::test]
async fn a_key_form_that_is_not_a_form_is_forbidden_and_creates_nothing() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let token = app.csrf_for(&app.client).await;

    let json = app
        .client
        .post(app.url("/keys"))
        .json(&serde_json::json!({"name": "ci", "scopes": ["read"], "csrf_token": token}))
        .send()
        .await
        .unwrap();
    let text = app
        .client
        .post(app.url("/keys"))
        .header("content-type", "text/plain")
        .body(format!("name=ci&csrf_token={token}"))
        .send()
        .await
        .unwrap();
    let none = app
        .client
        .post(app.url("/keys"))
        .body(format!("name=ci&csrf_token={token}"))
        .send()
        .await
        .unwrap();

    // None of these is a form, so no CSRF token can be read from them.
    assert_eq!(json.status(), StatusCode::FORBIDDEN);
    assert_eq!(text.status(), StatusCode::FORBIDDEN);
    assert_eq!(none.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.key_count(), 0);
}

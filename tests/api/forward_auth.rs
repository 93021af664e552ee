//! `/auth/verify`, the forward-auth endpoint, and the client address behind
//! trusted proxies (docs/forward-auth.md).

use crate::helpers::*;
use reqwest::{Client, Method, StatusCode};

async fn verify(app: &TestApp, query: &str, key: Option<&str>) -> reqwest::Response {
    let mut req = Client::new().get(app.url(&format!("/auth/verify{query}")));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap()
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[actix_web::test]
async fn a_valid_key_is_answered_200_with_the_caller_in_headers_and_no_body() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("proxy", &["read", "write"]).await;

    let res = verify(&app, "?scope=read", Some(&key)).await;

    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "content-length"), "0");
    assert_eq!(header(&res, "x-keyward-user"), "alice");
    assert_eq!(header(&res, "x-keyward-key-id"), id_of(&key));
    assert_eq!(header(&res, "x-keyward-key-prefix"), prefix_of(&key));
    assert_eq!(header(&res, "x-keyward-scopes"), "read write");
    assert!(res.headers().get("set-cookie").is_none());
    assert!(res.bytes().await.unwrap().is_empty());
}

#[actix_web::test]
async fn any_method_is_verified_the_same_and_x_api_key_works_too() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("proxy", &["read"]).await;

    for method in [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
    ] {
        let res = Client::new()
            .request(method.clone(), app.url("/auth/verify?scope=read"))
            .header("x-api-key", &key)
            .body("a body that is never read")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{method}");
        assert_eq!(header(&res, "x-keyward-user"), "alice", "{method}");
    }
}

#[actix_web::test]
async fn refusals_are_the_apis_own() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("proxy", &["read"]).await;

    let none = verify(&app, "", None).await;
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&none, "www-authenticate"), r#"Bearer realm="keyward""#);
    assert_eq!(none.text().await.unwrap(), r#"{"error":"missing_key"}"#);

    let bad = verify(&app, "", Some("kw_nonsense")).await;
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&bad, "www-authenticate"),
        r#"Bearer realm="keyward", error="invalid_token""#
    );
    assert_eq!(bad.text().await.unwrap(), r#"{"error":"invalid_token"}"#);

    // Every scope of the auth URL is required.
    let scope = verify(&app, "?scope=read&scope=write", Some(&key)).await;
    assert_eq!(scope.status(), StatusCode::FORBIDDEN);
    assert!(header(&scope, "www-authenticate").contains(r#"error="insufficient_scope", scope="write""#));
    let body: serde_json::Value = scope.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");
    assert!(header(&verify(&app, "?scope=read", Some(&key)).await, "x-keyward-user") == "alice");
}

#[actix_web::test]
async fn a_key_in_the_query_string_is_ignored() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("proxy", &["read"]).await;

    for query in [
        format!("?key={key}"),
        format!("?api_key={key}&scope=read"),
        format!("?access_token={key}"),
    ] {
        let res = verify(&app, &query, None).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{query}");
        assert_eq!(res.text().await.unwrap(), r#"{"error":"missing_key"}"#);
    }
}

#[actix_web::test]
async fn a_deleted_key_is_refused_at_once_and_uses_show_on_the_keys_page() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("proxy", &["read"]).await;
    assert_eq!(verify(&app, "", Some(&key)).await.status(), StatusCode::OK);

    // Last-used reaches the page within the flush interval (1 s here).
    // Written by an explicit flush, not by waiting for the timer.
    app.state.verifier.flush_last_used().await.unwrap();
    let row = app.key_row(&app.client, &prefix_of(&key)).await.unwrap();
    assert!(!cell(&row, "key-last-used").contains("never"), "the use shows on /keys");

    let res = app.post_form(&format!("/keys/{}/delete", id_of(&key)), &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(verify(&app, "", Some(&key)).await.status(), StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn two_authorization_headers_are_refused() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("proxy", &["read"]).await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.append("authorization", format!("Bearer {key}").parse().unwrap());
    headers.append("authorization", "Bearer kw_other".parse().unwrap());

    let res = Client::new()
        .get(app.url("/auth/verify"))
        .headers(headers)
        .send()
        .await
        .unwrap();

    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

// ---- the client address ------------------------------------------------

/// Fails logins for 25 usernames from `forwarded_for`; then tries one more
/// from `then_from` and returns its status.
async fn spray_then_try(app: &TestApp, forwarded_for: &str, then_from: &str) -> StatusCode {
    let client = browser();
    let token = app.csrf_for(&client).await;
    let attempt = |user: String, from: &str| {
        client
            .post(app.url("/login"))
            .header("x-forwarded-for", from)
            .form(&[
                ("username", user.as_str()),
                ("password", "wrong password"),
                ("csrf_token", token.as_str()),
            ])
            .send()
    };
    for i in 0..25 {
        attempt(format!("user{i}"), forwarded_for).await.unwrap();
    }
    attempt("someone-else".into(), then_from).await.unwrap().status()
}

#[actix_web::test]
async fn behind_a_trusted_proxy_each_forwarded_client_is_counted_on_its_own() {
    // 127.0.0.1 is a trusted proxy by default.
    let app = spawn_app().await;

    let status = spray_then_try(&app, "198.51.100.1", "1.2.3.4, 198.51.100.2").await;

    assert_eq!(status, StatusCode::UNAUTHORIZED, "another client is not throttled");
    assert_eq!(
        spray_then_try(&app, "198.51.100.3", "198.51.100.1").await,
        StatusCode::TOO_MANY_REQUESTS,
        "the spraying client is"
    );
}

#[actix_web::test]
async fn an_untrusted_peer_cannot_pick_its_address_with_forwarded_headers() {
    let app = spawn_app_with(|s| s.trusted_proxies = keyward::net::TrustedProxies::none()).await;

    let status = spray_then_try(&app, "198.51.100.1", "198.51.100.2").await;

    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "still one address: the peer's");
}

#[actix_web::test]
async fn garbage_forwarded_headers_from_a_trusted_proxy_do_no_harm() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("proxy", &["read"]).await;
    let huge = "1.2.3.4, ".repeat(2_000);

    for value in ["not an ip", "", ",,,", "999.1.1.1", huge.as_str()] {
        let res = Client::new()
            .get(app.url("/auth/verify"))
            .bearer_auth(&key)
            .header("x-forwarded-for", value)
            .header("x-real-ip", "also garbage")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{:.40}", value);
    }
}

#[actix_web::test]
async fn the_openapi_document_describes_every_json_route() {
    let app = spawn_app().await;

    let res = Client::new().get(app.url("/api/v1/openapi.json")).send().await.unwrap();

    assert_eq!(res.status(), StatusCode::OK);
    let doc: serde_json::Value = res.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/whoami",
        "/api/v1/keys",
        "/api/v1/keys/{id}",
        "/auth/verify",
        "/api/v1/ping",
        "/healthz",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is described");
    }
    assert!(doc["paths"]["/auth/verify"]["post"]["responses"]["200"]["headers"]["X-Keyward-User"].is_object());
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
}

//! docs/http.md, "The JSON API": the API guard and the JSON API, over real HTTP.

use std::time::Duration;

use crate::helpers::*;
use diesel::prelude::*;
use keyward::db::schema::api_keys;
use keyward::keys::format::{self, KeyTag};
use reqwest::{Client, Response, StatusCode};
use serde_json::json;

const INVALID: &str = r#"Bearer realm="keyward", error="invalid_token""#;

fn www_authenticate(res: &Response) -> String {
    res.headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// 401 with the `invalid_token` challenge and exactly `{"error":"invalid_token"}`.
async fn assert_invalid_token(res: Response) {
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(www_authenticate(&res), INVALID);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body, json!({"error": "invalid_token"}));
}

async fn assert_missing_key(res: Response) {
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(www_authenticate(&res), r#"Bearer realm="keyward""#);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body, json!({"error": "missing_key"}));
}

fn kw() -> KeyTag {
    KeyTag::parse("kw").unwrap()
}

/// `key` with the first character of its secret changed.
fn flip_one_char(key: &str) -> String {
    let at = key.rfind('_').unwrap() + 1;
    let mut bytes = key.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
    String::from_utf8(bytes).unwrap()
}

fn stored_last_used(app: &TestApp, key: &str) -> Option<chrono::NaiveDateTime> {
    api_keys::table
        .filter(api_keys::id.eq(id_of(key)))
        .select(api_keys::last_used_at)
        .first(&mut *app.db())
        .expect("the key is stored")
}

// ---- whoami -----------------------------------------------------------------

#[actix_web::test]
async fn whoami_names_the_caller_and_the_key_given_as_a_bearer_token() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &["keys:read", "read"]).await;

    let res = app.api_get("/api/v1/whoami", &key).await;

    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["user"], "alice");
    assert_eq!(body["key"]["name"], "ci");
    assert_eq!(body["key"]["prefix"], prefix_of(&key));
    assert_eq!(body["key"]["scopes"], json!(["keys:read", "read"]));
    assert_eq!(body["key"]["expires_at"], serde_json::Value::Null);
}

#[actix_web::test]
async fn whoami_accepts_the_key_in_an_x_api_key_header() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;

    let res = Client::new()
        .get(app.url("/api/v1/whoami"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();

    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["user"], "alice");
}

#[actix_web::test]
async fn a_key_in_the_query_string_or_body_is_ignored() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;

    for param in ["api_key", "key", "access_token"] {
        let res = Client::new()
            .get(app.url(&format!("/api/v1/whoami?{param}={key}")))
            .send()
            .await
            .unwrap();
        assert_missing_key(res).await;
    }
    let in_body = Client::new()
        .get(app.url("/api/v1/whoami"))
        .form(&[("api_key", key.as_str())])
        .send()
        .await
        .unwrap();
    assert_missing_key(in_body).await;
}

#[actix_web::test]
async fn a_call_without_a_key_is_told_a_key_is_missing() {
    let app = spawn_app().await;

    let res = Client::new().get(app.url("/api/v1/whoami")).send().await.unwrap();

    assert_missing_key(res).await;
}

// ---- Refused keys: one answer for every reason ------------------------------

#[actix_web::test]
async fn a_malformed_key_is_refused_as_an_invalid_token() {
    let app = spawn_app().await;

    let res = app.api_get("/api/v1/whoami", "not-a-key").await;

    assert_invalid_token(res).await;
}

#[actix_web::test]
async fn a_key_with_one_changed_character_is_refused() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;

    let res = app.api_get("/api/v1/whoami", &flip_one_char(&key)).await;

    assert_invalid_token(res).await;
    assert_eq!(
        app.api_get("/api/v1/whoami", &key).await.status(),
        StatusCode::OK,
        "the real key still works"
    );
}

#[actix_web::test]
async fn an_unknown_well_formed_key_is_refused() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    app.create_key("ci", &[]).await;
    let unknown = format::generate(&kw());

    let res = app.api_get("/api/v1/whoami", unknown.key.expose()).await;

    assert_invalid_token(res).await;
}

#[actix_web::test]
async fn a_known_id_with_a_forged_secret_is_refused() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;
    let body = format!("{}_{}", prefix_of(&key), format::random_base62(format::SECRET_LEN));
    let checksum = format::checksum(&body);
    let forged = format!("{body}{}", std::str::from_utf8(&checksum).unwrap());

    let res = app.api_get("/api/v1/whoami", &forged).await;

    assert_invalid_token(res).await;
}

#[actix_web::test]
async fn an_expired_key_is_refused() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let (_, html) = app.create_key_with(&app.client, "ci", &[], "1").await;
    let key = new_key_in(&html).unwrap();
    assert_eq!(
        app.api_get("/api/v1/whoami", &key).await.status(),
        StatusCode::OK,
        "works before expiry"
    );
    let past = keyward::time::now() - chrono::Duration::hours(1);
    diesel::update(api_keys::table.filter(api_keys::id.eq(id_of(&key))))
        .set(api_keys::expires_at.eq(Some(past)))
        .execute(&mut *app.db())
        .unwrap();
    // Editing the row stands in for a day passing. The verify cache holds
    // the expiry it read with the key (and refuses the key from the cache
    // once that passes: keys::tests), so drop the copy it has of the old one.
    app.state.verifier.forget(&id_of(&key));

    let res = app.api_get("/api/v1/whoami", &key).await;

    assert_invalid_token(res).await;
}

#[actix_web::test]
async fn an_expired_key_is_marked_expired_on_the_keys_page() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let (_, html) = app.create_key_with(&app.client, "ci", &[], "1").await;
    let key = new_key_in(&html).unwrap();
    let fresh = app.key_row(&app.client, &prefix_of(&key)).await.unwrap();
    assert!(!cell(&fresh, "key-name").contains("expired"));
    let past = keyward::time::now() - chrono::Duration::hours(1);
    diesel::update(api_keys::table.filter(api_keys::id.eq(id_of(&key))))
        .set(api_keys::expires_at.eq(Some(past)))
        .execute(&mut *app.db())
        .unwrap();

    let row = app.key_row(&app.client, &prefix_of(&key)).await.unwrap();

    assert!(cell(&row, "key-name").contains("expired"), "{row}");
}

#[actix_web::test]
async fn a_deleted_key_is_refused_at_once() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;
    assert_eq!(app.api_get("/api/v1/whoami", &key).await.status(), StatusCode::OK);
    let deleted = app.post_form(&format!("/keys/{}/delete", id_of(&key)), &[]).await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);

    let res = app.api_get("/api/v1/whoami", &key).await;

    assert_invalid_token(res).await;
}

#[actix_web::test]
async fn refused_keys_get_byte_for_byte_the_same_answer() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let real = app.create_key("ci", &[]).await;
    let deleted = app.create_key("old", &[]).await;
    app.post_form(&format!("/keys/{}/delete", id_of(&deleted)), &[]).await;
    let unknown = format::generate(&kw()).key.expose().to_owned();
    let mut answers = Vec::new();

    for bad in ["garbage".to_owned(), flip_one_char(&real), unknown, deleted] {
        let res = app.api_get("/api/v1/whoami", &bad).await;
        answers.push((res.status(), www_authenticate(&res), res.text().await.unwrap()));
    }

    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:#?}");
}

// ---- Scopes -----------------------------------------------------------------

#[actix_web::test]
async fn a_key_without_the_needed_scope_is_forbidden() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &["read"]).await;

    let res = app.api_get("/api/v1/keys", &key).await;

    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let challenge = www_authenticate(&res);
    assert!(challenge.contains(r#"error="insufficient_scope""#), "{challenge}");
    assert!(challenge.contains(r#"scope="keys:read""#), "{challenge}");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");
}

#[actix_web::test]
async fn deleting_through_the_api_needs_the_write_scope() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let reader = app.create_key("reader", &["keys:read"]).await;
    let other = app.create_key("other", &[]).await;

    let res = app
        .api_delete(&format!("/api/v1/keys/{}", id_of(&other)), &reader)
        .await;

    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(www_authenticate(&res).contains(r#"scope="keys:write""#));
    assert_eq!(app.api_get("/api/v1/whoami", &other).await.status(), StatusCode::OK);
}

// ---- Listing ----------------------------------------------------------------

#[actix_web::test]
async fn listing_keys_shows_the_callers_keys_only_and_no_secret() {
    let app = spawn_app().await;
    let bob = app.new_user("bob").await;
    let bobs = app.create_key_for(&bob, "bobs", &["keys:read"]).await;
    app.signed_up("alice").await;
    let reader = app.create_key("reader", &["keys:read"]).await;
    let spare = app.create_key("spare", &["write"]).await;

    let res = app.api_get("/api/v1/keys", &reader).await;

    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut prefixes: Vec<&str> = body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["prefix"].as_str().unwrap())
        .collect();
    prefixes.sort_unstable();
    let mut want = vec![prefix_of(&reader), prefix_of(&spare)];
    want.sort_unstable();
    assert_eq!(prefixes, want);
    assert!(!text.contains(&prefix_of(&bobs)), "another user's key is not listed");
    for key in [&reader, &spare, &bobs] {
        assert!(!text.contains(key.as_str()), "a full key in the listing");
        assert!(!text.contains(&secret_of(key)[..32]), "a secret in the listing");
    }
    let spare_json = body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "spare")
        .unwrap();
    assert_eq!(spare_json["scopes"], json!(["write"]));
}

// ---- Deleting through the API -----------------------------------------------

#[actix_web::test]
async fn a_key_deleted_through_the_api_is_refused_immediately() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let admin = app.create_key("admin", &["keys:write"]).await;
    let lost = app.create_key("lost", &[]).await;
    assert_eq!(app.api_get("/api/v1/whoami", &lost).await.status(), StatusCode::OK);

    let res = app.api_delete(&format!("/api/v1/keys/{}", id_of(&lost)), &admin).await;

    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_invalid_token(app.api_get("/api/v1/whoami", &lost).await).await;
    assert!(app.key_row(&app.client, &prefix_of(&lost)).await.is_none());
}

#[actix_web::test]
async fn another_users_key_cannot_be_deleted_through_the_api() {
    let app = spawn_app().await;
    let bob = app.new_user("bob").await;
    let bobs = app.create_key_for(&bob, "bobs", &[]).await;
    app.signed_up("alice").await;
    let admin = app.create_key("admin", &["keys:write"]).await;

    let res = app.api_delete(&format!("/api/v1/keys/{}", id_of(&bobs)), &admin).await;

    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.api_get("/api/v1/whoami", &bobs).await.status(), StatusCode::OK);
    assert!(app.key_row(&bob, &prefix_of(&bobs)).await.is_some());
}

#[actix_web::test]
async fn no_api_call_can_create_a_key() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let admin = app.create_key("admin", &["keys:read", "keys:write"]).await;

    for path in ["/api/v1/keys", "/api/v1/keys/new"] {
        let res = Client::new()
            .post(app.url(path))
            .bearer_auth(&admin)
            .json(&json!({"name": "sneaky", "scopes": ["keys:write"]}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_client_error(), "{path}: {}", res.status());
    }
    assert_eq!(app.key_count(), 1);
}

// ---- Last used --------------------------------------------------------------

#[actix_web::test]
async fn the_keys_page_shows_a_use_right_away() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;
    let before = app.key_row(&app.client, &prefix_of(&key)).await.unwrap();
    assert!(cell(&before, "key-last-used").contains("never"));

    assert_eq!(app.api_get("/api/v1/whoami", &key).await.status(), StatusCode::OK);

    let after = app.key_row(&app.client, &prefix_of(&key)).await.unwrap();
    let used = cell(&after, "key-last-used");
    assert!(!used.contains("never"), "{used}");
    assert!(used.contains("<time"), "{used}");
}

#[actix_web::test]
async fn a_use_is_written_to_the_database_soon_after() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;
    assert_eq!(stored_last_used(&app, &key), None);

    assert_eq!(app.api_get("/api/v1/whoami", &key).await.status(), StatusCode::OK);

    // The flush runs every second in tests; give it a few chances.
    let mut stored = None;
    for _ in 0..20 {
        actix_web::rt::time::sleep(Duration::from_millis(250)).await;
        stored = stored_last_used(&app, &key);
        if stored.is_some() {
            break;
        }
    }
    assert!(stored.is_some(), "last_used_at was never written");
    let row = app.key_row(&app.client, &prefix_of(&key)).await.unwrap();
    assert!(
        !cell(&row, "key-last-used").contains("never"),
        "the page still shows the use after the flush"
    );
}

/// API answers (accepted, refused, unknown path) carry what an API needs:
/// a CSP that forbids everything, framing included, `nosniff` and
/// `no-store`; any path under the API answers JSON, not the portal's page.
#[actix_web::test]
async fn api_answers_carry_the_api_headers_and_unknown_api_paths_answer_json() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;
    let client = Client::new();
    let get = |path: &str, key: Option<&str>| {
        let mut req = client.get(app.url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.send()
    };
    let cases = [
        ("/api/v1/whoami", Some(key.as_str()), StatusCode::OK),
        ("/api/v1/whoami", Some("kw_nonsense"), StatusCode::UNAUTHORIZED),
        ("/api/v1/ping", None, StatusCode::OK),
        ("/api/v1/no-such-route", None, StatusCode::NOT_FOUND),
        ("/api/v1", None, StatusCode::NOT_FOUND),
        (
            "/api/v1/whoami/extra/segments",
            Some(key.as_str()),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (path, key, status) in cases {
        let res = get(path, key).await.unwrap();
        assert_eq!(res.status(), status, "{path}");
        let h = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let csp = h("content-security-policy");
        for directive in ["default-src 'none'", "frame-ancestors 'none'", "object-src 'none'"] {
            assert!(csp.contains(directive), "{directive} missing from {csp:?} on {path}");
        }
        assert_eq!(h("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(h("cache-control"), "no-store", "{path}");
        assert!(h("content-type").starts_with("application/json"), "{path}");
        let body: serde_json::Value = res.json().await.unwrap();
        if status == StatusCode::NOT_FOUND {
            assert_eq!(body, json!({"error": "not_found"}), "{path}");
        }
    }
}

//! docs/http.md, "Pages" and "Security headers": the HTML portal over real HTTP.

use crate::helpers::*;
use reqwest::cookie::CookieStore as _;
use reqwest::{Client, StatusCode};

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The `<p class="field-error" id="{field}-error">` message, if any.
fn field_error(html: &str, field: &str) -> Option<String> {
    text_of(html, &format!("#{field}-error"))
}

fn rows(html: &str) -> usize {
    html.matches("<tr data-key-id=").count()
}

// ---- GET / ------------------------------------------------------------------

#[actix_web::test]
async fn the_start_page_sends_visitors_to_the_login_page() {
    let app = spawn_app().await;

    let res = app.get("/").await;

    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login");
}

#[actix_web::test]
async fn the_start_page_sends_logged_in_users_to_their_keys() {
    let app = spawn_app().await;
    app.signed_up("alice").await;

    let res = app.get("/").await;

    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/keys");
}

// ---- Register ---------------------------------------------------------------

#[actix_web::test]
async fn registering_logs_the_new_user_in() {
    let app = spawn_app().await;

    let res = app.register("alice").await;

    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/keys");
    let keys = app.get("/keys").await;
    assert_eq!(keys.status(), StatusCode::OK);
    assert!(keys.text().await.unwrap().contains("alice"), "the page names the user");
}

#[actix_web::test]
async fn a_registration_error_keeps_username_and_email_but_never_the_password() {
    let app = spawn_app().await;
    let typed = "my secret passphrase 42";

    let res = app
        .post_form(
            "/register",
            &[
                ("username", "bob"),
                ("email", "bob@example.com"),
                ("password", typed),
                ("password_confirm", "a different passphrase"),
            ],
        )
        .await;

    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(
        field_error(&html, "password_confirm").is_some(),
        "message next to the confirmation field"
    );
    assert!(html.contains(r#"value="bob""#), "typed username kept");
    assert!(html.contains(r#"value="bob@example.com""#), "typed email kept");
    assert!(!html.contains(typed), "the password is never sent back");
    assert!(
        !html.contains("a different passphrase"),
        "the confirmation is never sent back"
    );
    assert_eq!(app.user_count(), 0);
    assert!(!app.is_logged_in(&app.client).await);
}

#[actix_web::test]
async fn an_invalid_username_and_email_get_a_message_next_to_each_field() {
    let app = spawn_app().await;

    let res = app
        .post_form(
            "/register",
            &[
                ("username", "a b"),
                ("email", "not-an-email"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;

    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    assert!(field_error(&html, "username").is_some_and(|m| !m.is_empty()));
    assert!(field_error(&html, "email").is_some_and(|m| !m.is_empty()));
    assert!(html.contains(r#"value="not-an-email""#));
    assert!(!html.contains(PASSWORD));
    assert_eq!(app.user_count(), 0);
}

#[actix_web::test]
async fn a_username_is_taken_whatever_its_case() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let other = browser();

    let res = app
        .register_with(&other, "ALICE", "someone-else@example.com", PASSWORD)
        .await;

    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    let msg = field_error(&html, "username").expect("message next to the username");
    assert!(msg.contains("taken"), "{msg}");
    assert_eq!(app.user_count(), 1);
    assert!(!app.is_logged_in(&other).await);
}

#[actix_web::test]
async fn a_common_password_is_refused_with_a_clear_message() {
    let app = spawn_app().await;

    let res = app
        .register_with(&app.client, "carol", "carol@example.com", "password123")
        .await;

    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.unwrap();
    let msg = field_error(&html, "password").expect("message next to the password");
    assert!(msg.contains("common"), "{msg}");
    assert!(!html.contains("password123"));
    assert_eq!(app.user_count(), 0);
}

// ---- Login ------------------------------------------------------------------

#[actix_web::test]
async fn logging_in_leads_to_the_keys_page() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let browser = browser();

    let res = app.login_with(&browser, "alice", PASSWORD).await;

    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/keys");
    assert!(app.is_logged_in(&browser).await);
}

#[actix_web::test]
async fn login_honours_a_local_next_path() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let browser = browser();

    let res = app
        .post_form_with(
            &browser,
            "/login",
            &[("username", "alice"), ("password", PASSWORD), ("next", "/keys/new")],
        )
        .await;

    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/keys/new");
}

#[actix_web::test]
async fn login_never_redirects_to_another_site() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let browser = browser();

    let res = app
        .post_form_with(
            &browser,
            "/login",
            &[("username", "alice"), ("password", PASSWORD), ("next", "//evil.test")],
        )
        .await;

    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/keys");
}

#[actix_web::test]
async fn a_protected_page_sends_visitors_to_login_and_back() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let browser = browser();

    let res = app.get_with(&browser, "/keys/new").await;

    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = location(&res);
    assert!(to.starts_with("/login?next="), "{to}");
    let form = app.get_with(&browser, &to).await.text().await.unwrap();
    assert!(
        form.contains(r#"name="next" value="/keys/new""#),
        "the login form carries next"
    );
}

#[actix_web::test]
async fn an_unknown_user_and_a_wrong_password_get_the_same_answer() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let (first, second) = (browser(), browser());

    let wrong_password = app.login_with(&first, "alice", "not the right passphrase").await;
    let unknown_user = app.login_with(&second, "mallory", "not the right passphrase").await;

    assert_eq!(wrong_password.status(), unknown_user.status());
    assert!(wrong_password.status().is_client_error(), "{}", wrong_password.status());
    let normalise = |html: String, typed: &str| {
        let token = csrf_in(&html);
        html.replace(&token, "CSRF")
            .replace(&format!(r#"value="{typed}""#), r#"value="USER""#)
    };
    let a = normalise(wrong_password.text().await.unwrap(), "alice");
    let b = normalise(unknown_user.text().await.unwrap(), "mallory");
    assert_eq!(a, b);
    assert!(a.contains("Incorrect username or password"));
    assert!(!app.is_logged_in(&first).await && !app.is_logged_in(&second).await);
}

// ---- Logout -----------------------------------------------------------------

#[actix_web::test]
async fn logging_out_ends_the_session() {
    let app = spawn_app().await;
    app.signed_up("alice").await;

    let res = app.logout_with(&app.client).await;

    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login");
    let keys = app.get("/keys").await;
    assert_eq!(keys.status(), StatusCode::SEE_OTHER);
    assert!(location(&keys).starts_with("/login"));
}

#[actix_web::test]
async fn a_cookie_copied_before_logout_is_refused_afterwards() {
    let app = spawn_app().await;
    let (browser, jar) = browser_with_jar();
    let res = app
        .register_with(&browser, "alice", "alice@example.com", PASSWORD)
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let url = app.url("/").parse().unwrap();
    let copied = jar
        .cookies(&url)
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_owned();
    let thief = browser_with_cookie(&copied);
    assert_eq!(
        app.get_with(&thief, "/keys").await.status(),
        StatusCode::OK,
        "the copy works before logout"
    );

    app.logout_with(&browser).await;

    let res = app.get_with(&thief, "/keys").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(location(&res).starts_with("/login"));
}

// ---- The keys page ----------------------------------------------------------

#[actix_web::test]
async fn the_keys_page_shows_one_row_per_key_with_its_details() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let ci = app.create_key("ci", &["keys:read", "read"]).await;
    let deploy = app.create_key("deploy", &["write"]).await;

    let html = app.get_html("/keys").await;

    assert_eq!(rows(&html), 2);
    for (key, name, scopes) in [
        (&ci, "ci", &["keys:read", "read"][..]),
        (&deploy, "deploy", &["write"][..]),
    ] {
        let row = app
            .key_row(&app.client, &prefix_of(key))
            .await
            .expect("a row for the key");
        assert!(html.contains(&format!(
            r#"<tr data-key-id="{}" data-key-prefix="{}""#,
            id_of(key),
            prefix_of(key)
        )));
        assert!(cell(&row, "key-name").contains(name));
        assert!(row.contains(&prefix_of(key)));
        for s in scopes {
            assert!(cell(&row, "key-scopes").contains(s), "{s} in {row}");
        }
        assert!(cell(&row, "key-last-used").contains("never"), "{row}");
        assert!(cell(&row, "key-expires").contains("never"), "{row}");
    }
}

#[actix_web::test]
async fn a_new_key_is_shown_once_and_never_again() {
    let app = spawn_app().await;
    app.signed_up("alice").await;

    let res = app
        .post_form("/keys", &[("name", "ci"), ("scopes", "read"), ("expires_in_days", "")])
        .await;

    assert_eq!(res.status(), StatusCode::OK);
    assert!(header(&res, "cache-control").contains("no-store"));
    let key = new_key_in(&res.text().await.unwrap()).expect("the full key in <code id=new-key>");
    assert!(key.starts_with("kw_"));
    let list = app.get_html("/keys").await;
    assert!(list.contains(&prefix_of(&key)));
    assert!(!list.contains(&key), "the full key is not on the list");
    assert!(!list.contains(&secret_of(&key)[..32]), "the secret is not on the list");
    let confirm = app.get_html(&format!("/keys/{}/delete", id_of(&key))).await;
    assert!(
        !confirm.contains(&secret_of(&key)[..32]),
        "the secret is not on the delete page"
    );
}

#[actix_web::test]
async fn a_user_cannot_give_two_keys_the_same_name() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    app.create_key("ci", &[]).await;

    let (status, html) = app.create_key_with(&app.client, "ci", &[], "").await;

    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        field_error(&html, "name").is_some_and(|m| m.contains("already")),
        "{html}"
    );
    assert!(html.contains(r#"value="ci""#), "the typed name is kept");
    assert!(new_key_in(&html).is_none());
    assert_eq!(app.key_count(), 1);
}

#[actix_web::test]
async fn two_users_may_each_have_a_key_with_the_same_name() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    app.create_key("ci", &[]).await;
    let bob = app.new_user("bob").await;

    let (status, html) = app.create_key_with(&bob, "ci", &[], "").await;

    assert_eq!(status, StatusCode::OK);
    assert!(new_key_in(&html).is_some());
    assert_eq!(app.key_count(), 2);
}

#[actix_web::test]
async fn the_chosen_scopes_are_given_to_the_key() {
    let app = spawn_app().await;
    app.signed_up("alice").await;

    let key = app.create_key("ci", &["write", "keys:read"]).await;

    let row = app.key_row(&app.client, &prefix_of(&key)).await.unwrap();
    let scopes = cell(&row, "key-scopes");
    assert!(scopes.contains("keys:read") && scopes.contains("write"), "{scopes}");
    assert!(!scopes.contains("keys:write"), "{scopes}");
    let who: serde_json::Value = app.api_get("/api/v1/whoami", &key).await.json().await.unwrap();
    assert_eq!(who["key"]["scopes"], serde_json::json!(["keys:read", "write"]));
}

#[actix_web::test]
async fn an_unknown_scope_is_refused_and_nothing_is_created() {
    let app = spawn_app().await;
    app.signed_up("alice").await;

    let (status, html) = app.create_key_with(&app.client, "ci", &["read", "admin"], "").await;

    assert!(status.is_client_error(), "{status}");
    assert!(field_error(&html, "scopes").is_some(), "message next to the scopes");
    assert!(html.contains(r#"value="read" checked"#), "the valid choice is kept");
    assert!(new_key_in(&html).is_none());
    assert_eq!(app.key_count(), 0);
    assert_eq!(rows(&app.get_html("/keys").await), 0);
}

#[actix_web::test]
async fn an_invalid_expiry_is_refused_with_a_message() {
    let app = spawn_app().await;
    app.signed_up("alice").await;

    for bad in ["0", "-1", "abc", "1.5", "3651", "99999999999"] {
        let (status, html) = app.create_key_with(&app.client, "ci", &[], bad).await;

        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert!(field_error(&html, "expires_in_days").is_some(), "message for {bad}");
        assert!(html.contains(&format!(r#"value="{bad}""#)), "typed value {bad} kept");
    }
    assert_eq!(app.key_count(), 0);
}

#[actix_web::test]
async fn a_key_with_an_expiry_shows_when_it_expires() {
    let app = spawn_app().await;
    app.signed_up("alice").await;

    let (status, html) = app.create_key_with(&app.client, "ci", &[], "30").await;

    assert_eq!(status, StatusCode::OK);
    let key = new_key_in(&html).unwrap();
    let row = app.key_row(&app.client, &prefix_of(&key)).await.unwrap();
    let expires = cell(&row, "key-expires");
    assert!(expires.contains("<time") && !expires.contains("never"), "{expires}");
    let who: serde_json::Value = app.api_get("/api/v1/whoami", &key).await.json().await.unwrap();
    assert!(who["key"]["expires_at"].is_string());
}

// ---- Deleting keys ----------------------------------------------------------

#[actix_web::test]
async fn deleting_a_key_removes_it_and_says_so() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;
    let confirm = app.get(&format!("/keys/{}/delete", id_of(&key))).await;
    assert_eq!(confirm.status(), StatusCode::OK);

    let res = app.post_form(&format!("/keys/{}/delete", id_of(&key)), &[]).await;

    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/keys");
    let html = app.get_html("/keys").await;
    assert!(html.contains("was deleted"), "a message says what happened");
    assert!(html.contains(&prefix_of(&key)), "the message names the key");
    assert_eq!(rows(&html), 0);
    assert_eq!(
        app.api_get("/api/v1/whoami", &key).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[actix_web::test]
async fn another_users_key_cannot_be_seen_or_deleted() {
    let app = spawn_app().await;
    let bob = app.new_user("bob").await;
    let bobs_key = app.create_key_for(&bob, "bobs", &[]).await;
    app.signed_up("alice").await;
    let path = format!("/keys/{}/delete", id_of(&bobs_key));

    let page = app.get(&path).await;
    let post = app.post_form(&path, &[]).await;

    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert!(!page.text().await.unwrap().contains("bobs"));
    assert_eq!(post.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.api_get("/api/v1/whoami", &bobs_key).await.status(), StatusCode::OK);
    assert!(app.key_row(&bob, &prefix_of(&bobs_key)).await.is_some());
}

#[actix_web::test]
async fn deleting_a_key_that_does_not_exist_is_not_found() {
    let app = spawn_app().await;
    app.signed_up("alice").await;

    for id in ["AAAAAAAA", "nope", "..%2F..%2Fetc"] {
        let res = app.post_form(&format!("/keys/{id}/delete"), &[]).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{id}");
    }
}

// ---- CSRF -------------------------------------------------------------------

/// Token values that must be refused: none, empty, and another session's.
async fn bad_tokens(app: &TestApp) -> Vec<Option<String>> {
    let stranger = browser();
    vec![None, Some(String::new()), Some(app.csrf_for(&stranger).await)]
}

async fn post_with_token(client: &Client, url: &str, fields: &[(&str, &str)], token: &Option<String>) -> StatusCode {
    let mut all: Vec<(&str, &str)> = fields.to_vec();
    if let Some(t) = token {
        all.push(("csrf_token", t));
    }
    client.post(url).form(&all).send().await.unwrap().status()
}

#[actix_web::test]
async fn creating_a_key_without_a_valid_csrf_token_is_forbidden() {
    let app = spawn_app().await;
    app.signed_up("alice").await;

    for token in bad_tokens(&app).await {
        let status = post_with_token(
            &app.client,
            &app.url("/keys"),
            &[("name", "ci"), ("expires_in_days", "")],
            &token,
        )
        .await;

        assert_eq!(status, StatusCode::FORBIDDEN, "{token:?}");
    }
    assert_eq!(app.key_count(), 0);
}

#[actix_web::test]
async fn deleting_a_key_without_a_valid_csrf_token_is_forbidden() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;
    let url = app.url(&format!("/keys/{}/delete", id_of(&key)));

    for token in bad_tokens(&app).await {
        let status = post_with_token(&app.client, &url, &[], &token).await;

        assert_eq!(status, StatusCode::FORBIDDEN, "{token:?}");
    }
    assert_eq!(app.key_count(), 1);
    assert_eq!(app.api_get("/api/v1/whoami", &key).await.status(), StatusCode::OK);
}

#[actix_web::test]
async fn logging_in_without_a_valid_csrf_token_is_forbidden() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let browser = browser();
    app.csrf_for(&browser).await;

    for token in bad_tokens(&app).await {
        let status = post_with_token(
            &browser,
            &app.url("/login"),
            &[("username", "alice"), ("password", PASSWORD)],
            &token,
        )
        .await;

        assert_eq!(status, StatusCode::FORBIDDEN, "{token:?}");
    }
    assert!(!app.is_logged_in(&browser).await);
}

#[actix_web::test]
async fn registering_without_a_valid_csrf_token_is_forbidden() {
    let app = spawn_app().await;
    app.csrf_for(&app.client).await;
    let fields = [
        ("username", "alice"),
        ("email", "alice@example.com"),
        ("password", PASSWORD),
        ("password_confirm", PASSWORD),
    ];

    for token in bad_tokens(&app).await {
        let status = post_with_token(&app.client, &app.url("/register"), &fields, &token).await;

        assert_eq!(status, StatusCode::FORBIDDEN, "{token:?}");
    }
    assert_eq!(app.user_count(), 0);
    assert!(!app.is_logged_in(&app.client).await);
}

#[actix_web::test]
async fn logging_out_without_a_valid_csrf_token_is_forbidden() {
    let app = spawn_app().await;
    app.signed_up("alice").await;

    for token in bad_tokens(&app).await {
        let status = post_with_token(&app.client, &app.url("/logout"), &[], &token).await;

        assert_eq!(status, StatusCode::FORBIDDEN, "{token:?}");
    }
    assert!(app.is_logged_in(&app.client).await);
}

// ---- Health, headers, cookies, 404 ------------------------------------------

#[actix_web::test]
async fn the_health_check_answers_ok() {
    let app = spawn_app().await;

    let res = app.get("/healthz").await;

    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ok"}));
}

fn assert_security_headers(res: &reqwest::Response) {
    let csp = header(res, "content-security-policy");
    for directive in ["object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"] {
        assert!(
            csp.contains(directive),
            "{directive} missing from {csp:?} on {}",
            res.url()
        );
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header(res, "x-content-type-options"), "nosniff", "on {}", res.url());
    assert_eq!(header(res, "referrer-policy"), "no-referrer", "on {}", res.url());
}

#[actix_web::test]
async fn every_page_carries_the_security_headers() {
    let app = spawn_app().await;
    let anonymous = browser();
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;

    for path in ["/login", "/register", "/no-such-page"] {
        assert_security_headers(&app.get_with(&anonymous, path).await);
    }
    for path in ["/keys", "/keys/new", &format!("/keys/{}/delete", id_of(&key))] {
        let res = app.get(path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_security_headers(&res);
        assert!(header(&res, "cache-control").contains("no-store"), "{path}");
    }
}

#[actix_web::test]
async fn the_session_cookie_is_http_only_lax_and_site_wide() {
    let app = spawn_app().await;

    let res = app.register("alice").await;

    let cookies: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("keyward="))
        .expect("a session cookie is set");
    let attrs: Vec<String> = session.split(';').map(|a| a.trim().to_ascii_lowercase()).collect();
    assert!(attrs.contains(&"httponly".to_owned()), "{session}");
    assert!(
        attrs.contains(&"samesite=lax".to_owned()) || attrs.contains(&"samesite=strict".to_owned()),
        "{session}"
    );
    assert!(attrs.contains(&"path=/".to_owned()), "{session}");
}

#[actix_web::test]
async fn an_unknown_path_gets_a_not_found_page() {
    let app = spawn_app().await;

    let res = app.get("/no/such/page").await;

    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(header(&res, "content-type").starts_with("text/html"));
    let html = res.text().await.unwrap();
    assert!(html.contains("Not found"));
}

#[actix_web::test]
async fn an_error_page_shows_who_is_logged_in() {
    let app = spawn_app().await;
    app.signed_up("alice").await;

    let res = app.get("/no/such/page").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let html = res.text().await.unwrap();
    assert!(html.contains("Not found"));
    assert!(html.contains("alice") && html.contains("Log out"), "{html}");
    assert!(
        !html.contains(r#"href="/login""#),
        "no login link for someone logged in"
    );

    // A visitor gets the same page with the visitor's menu.
    let res = browser().get(app.url("/no/such/page")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"href="/login""#) && !html.contains("Log out"));
}

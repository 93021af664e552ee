//! Leaked keys and operators: GitHub's secret-scanning endpoint, public
//! revocation, the admin console, the key policy and the CLI.

use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePublicKey as _;
use reqwest::{Client, StatusCode};

use crate::helpers::*;
use crate::mailbox::wait_for_messages;

struct Scanner {
    key: SigningKey,
    id: String,
}

impl Scanner {
    /// A signing key of our own, published as GitHub publishes theirs.
    fn new(dir: &std::path::Path) -> (Self, std::path::PathBuf) {
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let pem = key
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap();
        let id = "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a".to_owned();
        let file = dir.join("github-keys.json");
        let json = serde_json::json!({"public_keys": [
            {"key_identifier": "someone-else", "key": pem, "is_current": false},
            {"key_identifier": id, "key": pem, "is_current": true},
        ]});
        std::fs::write(&file, json.to_string()).unwrap();
        (Self { key, id }, file)
    }

    fn sign(&self, body: &[u8]) -> String {
        let sig: Signature = self.key.sign(body);
        base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
    }
}

async fn report(app: &TestApp, id: &str, signature: &str, body: &str) -> reqwest::Response {
    Client::new()
        .post(app.url("/api/v1/leaks/github"))
        .header("content-type", "application/json")
        .header("github-public-key-identifier", id)
        .header("github-public-key-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

async fn whoami(app: &TestApp, key: &str) -> StatusCode {
    app.api_get("/api/v1/whoami", key).await.status()
}

#[actix_web::test]
async fn a_signed_github_report_revokes_live_keys_and_labels_each_token() {
    // The owner's notice goes through a real SMTP server.
    let Some(smtp) = crate::mailbox::SmtpServer::start() else {
        return;
    };
    let keys_dir = tempfile::tempdir().unwrap();
    let (scanner, file) = Scanner::new(keys_dir.path());
    let smtp_url = format!("smtp://127.0.0.1:{}", smtp.port);
    let app = spawn_app_with(|s| {
        s.github_scanning_keys = Some(file.clone());
        s.smtp_url = Some(smtp_url.to_string().into());
    })
    .await;
    app.signed_up("alice").await;
    let leaked = app.create_key("leaked", &[]).await;
    let safe = app.create_key("safe", &[]).await;
    let unknown = keyward::keys::format::generate(&keyward::keys::format::KeyTag::parse("kw").unwrap());
    let body = serde_json::json!([
        {"token": leaked, "type": "keyward_api_key", "url": "https://github.com/org/repo/blob/main/.env", "source": "content"},
        {"token": unknown.key.expose(), "type": "keyward_api_key", "url": "", "source": "content"},
        {"token": "ghp_notoursatall", "type": "keyward_api_key", "url": "", "source": "content"},
    ])
    .to_string();

    let res = report(&app, &scanner.id, &scanner.sign(body.as_bytes()), &body).await;

    assert_eq!(res.status(), StatusCode::OK);
    let answer: serde_json::Value = res.json().await.unwrap();
    let labels: Vec<&str> = answer
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["true_positive", "false_positive", "false_positive"]);
    use sha2::Digest as _;
    let hash: String = sha2::Sha256::digest(leaked.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(answer[0]["token_hash"], hash);
    assert_eq!(answer[0]["token_type"], "keyward_api_key");
    assert_eq!(whoami(&app, &leaked).await, StatusCode::UNAUTHORIZED, "revoked");
    assert_eq!(whoami(&app, &safe).await, StatusCode::OK);
    // Other mails (the sign-up's, the new keys') may arrive around it.
    let told = |m: &String| m.contains("was revoked") && m.contains("https://github.com/org/repo/blob/main/.env");
    let mut mails = Vec::new();
    for n in 1..=8 {
        mails = wait_for_messages(&smtp.new_mail_dir(), n).await;
        if mails.iter().any(told) {
            break;
        }
    }
    assert!(
        mails.iter().any(told),
        "the owner was told where the key was found: {mails:?}"
    );
    assert!(app
        .get_html("/account/activity")
        .await
        .contains(r#"data-event="key_leaked""#));
}

#[actix_web::test]
async fn a_report_without_a_valid_signature_revokes_nothing() {
    let keys_dir = tempfile::tempdir().unwrap();
    let (scanner, file) = Scanner::new(keys_dir.path());
    let app = spawn_app_with(|s| s.github_scanning_keys = Some(file.clone())).await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;
    let body = serde_json::json!([{"token": key, "type": "t", "url": "", "source": "s"}]).to_string();
    let signature = scanner.sign(body.as_bytes());
    let altered = body.replace("\"s\"", "\"x\"");

    for (id, sig, text) in [
        (scanner.id.as_str(), signature.as_str(), altered.as_str()),
        ("unknown-identifier", signature.as_str(), body.as_str()),
        (scanner.id.as_str(), "bm90IGEgc2lnbmF0dXJl", body.as_str()),
        (scanner.id.as_str(), "", body.as_str()),
    ] {
        let res = report(&app, id, sig, text).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{id} {sig}");
    }
    assert_eq!(whoami(&app, &key).await, StatusCode::OK);

    // Signed, but not what GitHub sends: 400, nothing revoked.
    for bad in ["not json", r#"{"token":"x"}"#, r#"[{"type":"t"}]"#] {
        let res = report(&app, &scanner.id, &scanner.sign(bad.as_bytes()), bad).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let huge = format!("[{}]", vec![r#"{"token":"x"}"#; 80_000].join(","));
    let res = report(&app, &scanner.id, &scanner.sign(huge.as_bytes()), &huge).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(whoami(&app, &key).await, StatusCode::OK);
}

#[actix_web::test]
async fn without_scanning_keys_the_leak_endpoint_does_not_exist() {
    let app = spawn_app().await;
    let res = report(&app, "id", "sig", "[]").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn anyone_holding_a_key_can_revoke_it_and_learns_nothing() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;
    let revoke = |keys: serde_json::Value| {
        Client::new()
            .post(app.url("/api/v1/revoke"))
            .json(&serde_json::json!({ "keys": keys }))
            .send()
    };

    for keys in [
        serde_json::json!(["kw_nonsense"]),
        serde_json::json!([format!("{}x", &key[..key.len() - 1])]),
        serde_json::json!([key]),
    ] {
        let res = revoke(keys).await.unwrap();
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        assert_eq!(res.text().await.unwrap(), "{}");
    }
    assert_eq!(whoami(&app, &key).await, StatusCode::UNAUTHORIZED);
    let mails = wait_for_messages(&app.dir.path().join("outbox"), 2).await;
    assert!(mails.iter().any(|m| m.contains("public revocation")));

    let many: Vec<String> = (0..1001).map(|i| format!("kw_{i}")).collect();
    assert_eq!(
        revoke(serde_json::json!(many)).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    let res = Client::new()
        .post(app.url("/api/v1/revoke"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

async fn make_admin(app: &TestApp, name: &str) {
    assert!(keyward::operators::set_admin(&app.state.pool, name, true)
        .await
        .unwrap());
}

#[actix_web::test]
async fn everyone_but_an_admin_gets_404_under_admin() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let visitor = browser();
    for path in [
        "/admin",
        "/admin/users",
        "/admin/users/alice",
        "/admin/activity",
        "/admin/activity?format=csv",
        "/admin/policy",
        "/admin/nothing-here",
        "/admin/users/alice/disable",
    ] {
        assert_eq!(app.get(path).await.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            app.get_with(&visitor, path).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    for path in [
        "/admin/users/alice/disable",
        "/admin/users/alice/revoke-keys",
        "/admin/policy",
    ] {
        let res = app.post_form(path, &[("max_key_lifetime_days", "1")]).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[actix_web::test]
async fn an_admin_disables_a_user_whose_sessions_and_keys_stop_at_once() {
    let app = spawn_app().await;
    app.signed_up("root").await;
    make_admin(&app, "root").await;
    let bob = app.new_user("bob").await;
    let key = app.create_key_for(&bob, "bob's key", &[]).await;
    assert_eq!(whoami(&app, &key).await, StatusCode::OK);

    let users = app.get_html("/admin/users").await;
    assert!(users.contains(r#"data-user="bob""#) && users.contains(r#"data-user="root""#));

    let res = app.post_form("/admin/users/bob/disable", &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(whoami(&app, &key).await, StatusCode::UNAUTHORIZED);
    assert!(!app.is_logged_in(&bob).await);
    let res = app.login_with(&browser(), "bob", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(app
        .get_html("/admin/users")
        .await
        .contains(r#"data-user="bob" data-state="disabled""#));

    let res = app.post_form("/admin/users/bob/enable", &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(whoami(&app, &key).await, StatusCode::OK);
    assert_eq!(
        app.login_with(&browser(), "bob", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );

    let res = app.post_form("/admin/users/bob/revoke-keys", &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(whoami(&app, &key).await, StatusCode::UNAUTHORIZED);

    // An admin cannot disable themself.
    let res = app.post_form("/admin/users/root/disable", &[]).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(app.is_logged_in(&app.client).await);
}

#[actix_web::test]
async fn the_key_policy_caps_lifetimes_of_new_keys() {
    let app = spawn_app().await;
    app.signed_up("root").await;
    make_admin(&app, "root").await;
    for bad in ["0", "3651", "soon"] {
        let res = app.post_form("/admin/policy", &[("max_key_lifetime_days", bad)]).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let res = app.post_form("/admin/policy", &[("max_key_lifetime_days", "30")]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    for days in ["", "31"] {
        let (status, html) = app.create_key_with(&app.client, "long", &[], days).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{days:?}");
        assert!(html.contains("must expire within 30 days"));
    }
    let (status, _) = app.create_key_with(&app.client, "ok", &[], "30").await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_web::test]
async fn the_activity_log_exports_as_csv_and_json_lines() {
    let app = spawn_app().await;
    app.signed_up("root").await;
    make_admin(&app, "root").await;
    let bob = app.new_user("bob").await;
    app.create_key_for(&bob, "k", &[]).await;
    app.login_with(&browser(), "bob", "wrong password").await;

    let page = app.get_html("/admin/activity?user=bob").await;
    assert!(page.contains(r#"data-event="key_created""#) && page.contains(r#"data-event="login_failed""#));
    assert!(!page.contains(r#"data-user="root""#));

    let csv = app.get("/admin/activity?format=csv&user=bob").await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "id,at,user,event,address,user_agent,key_prefix");
    assert!(lines.iter().skip(1).all(|l| l.contains(r#""bob""#)));
    assert!(lines.iter().any(|l| l.contains(r#""key_created""#)));

    let jsonl = app
        .get("/admin/activity?format=jsonl&event=login_failed")
        .await
        .text()
        .await
        .unwrap();
    let rows: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["user"], "bob");
    assert_eq!(
        app.get("/admin/activity?format=xml").await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[actix_web::test]
async fn the_cli_makes_admins_disables_users_and_revokes_keys() {
    if crate::pg::selected() {
        println!("skipped: the CLI is driven on the SQLite pass");
        return;
    }
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
            .env_remove("DATABASE_URL")
            .env("KEYWARD_DATA_DIR", app.dir.path())
            .args(args)
            .output()
            .unwrap()
    };

    assert!(cli(&["user", "admin", "alice"]).status.success());
    assert_eq!(
        app.get("/admin/users").await.status(),
        StatusCode::OK,
        "alice is an admin"
    );
    assert!(cli(&["user", "admin", "alice", "--revoke"]).status.success());
    assert_eq!(app.get("/admin/users").await.status(), StatusCode::NOT_FOUND);
    assert!(!cli(&["user", "admin", "nobody"]).status.success());

    let out = cli(&["keys", "revoke", &prefix_of(&key)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(whoami(&app, &key).await, StatusCode::UNAUTHORIZED);
    assert!(!cli(&["keys", "revoke", "kw_AAAAAAAA"]).status.success());

    assert!(cli(&["user", "disable", "alice"]).status.success());
    assert!(!app.is_logged_in(&app.client).await);
    assert!(cli(&["user", "enable", "alice"]).status.success());
    assert_eq!(
        app.login_with(&browser(), "alice", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[actix_web::test]
async fn a_user_disabled_on_one_instance_is_refused_on_another_within_a_second() {
    let Some(url) = crate::pg::fresh_database_or_skip("a_user_disabled_on_one_instance_is_refused_on_another") else {
        return;
    };
    let a = spawn_app_with(|s| s.database_url = Some(url.clone().into())).await;
    let b = spawn_app_with(|s| s.database_url = Some(url.clone().into())).await;
    a.signed_up("root").await;
    make_admin(&a, "root").await;
    let bob = a.new_user("bob").await;
    let key = a.create_key_for(&bob, "k", &[]).await;
    let bob_on_b = browser();
    assert_eq!(
        b.login_with(&bob_on_b, "bob", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(whoami(&b, &key).await, StatusCode::OK, "B has it cached");

    let res = a.post_form("/admin/users/bob/disable", &[]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    let start = std::time::Instant::now();
    while whoami(&b, &key).await != StatusCode::UNAUTHORIZED {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(1),
            "B still accepts the key"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!b.is_logged_in(&bob_on_b).await, "bob's session on B is gone");
}

#[actix_web::test]
async fn an_export_of_ten_thousand_events_streams_every_row() {
    use diesel::RunQueryDsl as _;
    let app = spawn_app().await;
    app.signed_up("root").await;
    make_admin(&app, "root").await;
    let now = keyward::time::now();
    {
        let mut conn = app.db();
        for chunk in 0..10 {
            let rows: Vec<String> = (0..1000)
                .map(|i| {
                    format!(
                        "(1, 'login', '{}', '10.0.{chunk}.{}', 'agent', '', '')",
                        now.format("%Y-%m-%d %H:%M:%S"),
                        i % 250
                    )
                })
                .collect();
            diesel::sql_query(format!(
                "INSERT INTO activity_events (user_id, event, at, address, user_agent, key_prefix, detail) VALUES {}",
                rows.join(",")
            ))
            .execute(&mut *conn)
            .unwrap();
        }
    }

    let res = app.get("/admin/activity?format=csv&event=login").await;
    // Streamed in batches (memory bounded by one batch, whatever the
    // number of rows): sent chunked, with no length known up front.
    assert_eq!(
        res.headers().get("transfer-encoding").map(|v| v.to_str().unwrap()),
        Some("chunked")
    );
    let csv = res.text().await.unwrap();
    let jsonl = app
        .get("/admin/activity?format=jsonl&event=login")
        .await
        .text()
        .await
        .unwrap();

    // The header and 10,000 rows, in batches of 500.
    assert_eq!(csv.lines().count(), 1 + 10_000);
    assert_eq!(jsonl.lines().count(), 10_000);
}

//! docs/architecture.md, "Logs": secrets never reach a log. The real
//! binary runs with RUST_LOG=debug while a user goes through every step
//! that handles one.

use crate::helpers::*;
use reqwest::{Client, StatusCode};

fn cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| {
            v.to_str()
                .ok()?
                .split(';')
                .next()?
                .split_once('=')
                .map(|(_, v)| v.to_owned())
        })
        .filter(|v| !v.is_empty())
        .collect()
}

#[actix_web::test]
async fn debug_logs_never_contain_a_password_a_key_or_a_csrf_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Binary::start(dir.path(), &[("RUST_LOG", "debug")]).await;
    let wrong_password = "not my passphrase at all";
    let mut secrets: Vec<String> = vec![PASSWORD.to_owned(), wrong_password.to_owned()];
    let alice = browser();

    let (registered, token) = server
        .post_form(
            &alice,
            "/register",
            "/register",
            &[
                ("username", "alice"),
                ("email", "alice@example.com"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(registered.status(), StatusCode::SEE_OTHER);
    secrets.push(token);
    secrets.extend(cookies(&registered));
    let (created, token) = server
        .post_form(
            &alice,
            "/keys/new",
            "/keys",
            &[("name", "ci"), ("scopes", "keys:read"), ("expires_in_days", "")],
        )
        .await;
    assert_eq!(created.status(), StatusCode::OK);
    secrets.push(token);
    let key = new_key_in(&created.text().await.unwrap()).unwrap();
    secrets.push(key.clone());
    secrets.push(secret_of(&key)[..32].to_owned());
    let api = Client::new();
    let ok = api
        .get(server.url("/api/v1/whoami"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    api.get(server.url("/api/v1/keys"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    api.get(server.url(&format!("/api/v1/whoami?api_key={key}")))
        .send()
        .await
        .unwrap();
    let forged = format!(
        "{}{}",
        &key[..key.len() - 1],
        if key.ends_with('A') { 'B' } else { 'A' }
    );
    api.get(server.url("/api/v1/whoami"))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    let (bad_login, token) = server
        .post_form(
            &browser(),
            "/login",
            "/login",
            &[("username", "alice"), ("password", wrong_password)],
        )
        .await;
    assert!(bad_login.status().is_client_error());
    secrets.push(token);
    let again = browser();
    let (good_login, token) = server
        .post_form(
            &again,
            "/login",
            "/login",
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(good_login.status(), StatusCode::SEE_OTHER);
    secrets.push(token);
    secrets.extend(cookies(&good_login));
    secrets.push(csrf_in(&server.page(&again, "/keys").await));

    let logs = server.stop();
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "the logs contain the secret {secret:?}:\n{logs}"
        );
    }
    assert!(logs.contains("DEBUG"), "debug logging was on:\n{logs}");
    let prefix = prefix_of(&key);
    assert!(
        logs.lines().any(|l| l.contains("key_created") && l.contains(&prefix)),
        "key creation is logged with the key's display prefix {prefix}:\n{logs}"
    );
    assert!(logs.contains("login_failed"), "the failed login is logged:\n{logs}");
}

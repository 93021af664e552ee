//! SPEC §2 and §6: secrets never reach a log. The real binary runs with
//! RUST_LOG=debug while a user goes through every step that handles one.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::*;
use reqwest::{Client, StatusCode};

/// The running binary; killed when dropped, even if the test fails.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start(data_dir: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let out = std::fs::File::create(data_dir.join("stdout.log")).unwrap();
        let err = std::fs::File::create(data_dir.join("stderr.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_keyward"))
            .current_dir(data_dir)
            .env_remove("DATABASE_URL")
            .env_remove("KEYWARD_SMTP_URL")
            .env("RUST_LOG", "debug")
            .env("KEYWARD_BIND", format!("127.0.0.1:{port}"))
            .env("KEYWARD_DATA_DIR", data_dir)
            .env("KEYWARD_WORKERS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("the keyward binary starts");
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..200 {
            if let Ok(res) = Client::new().get(server.url("/healthz")).send().await {
                if res.status() == StatusCode::OK {
                    return server;
                }
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("keyward did not become healthy; logs:\n{}", logs(data_dir));
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn page(&self, client: &Client, path: &str) -> String {
        client.get(self.url(path)).send().await.unwrap().text().await.unwrap()
    }

    /// Posts a form with the CSRF token from `form_page`; returns the token used.
    async fn post(
        &self,
        client: &Client,
        form_page: &str,
        path: &str,
        fields: &[(&str, &str)],
    ) -> (reqwest::Response, String) {
        let token = csrf_in(&self.page(client, form_page).await);
        let mut all = fields.to_vec();
        all.push(("csrf_token", &token));
        (client.post(self.url(path)).form(&all).send().await.unwrap(), token)
    }
}

fn logs(dir: &Path) -> String {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    read("stdout.log") + &read("stderr.log")
}

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
    let server = Server::start(dir.path()).await;
    let wrong_password = "not my passphrase at all";
    let mut secrets: Vec<String> = vec![PASSWORD.to_owned(), wrong_password.to_owned()];
    let alice = browser();

    let (registered, token) = server
        .post(
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
        .post(
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
        .post(
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
        .post(
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

    drop(server);

    let logs = logs(dir.path());
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

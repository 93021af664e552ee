//! The command line: `keyward user create` and `keyward migrate`, and a
//! portal with registration closed.

use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::helpers::*;
use reqwest::StatusCode;

fn keyward(data_dir: &std::path::Path, database_url: Option<&str>, args: &[&str], stdin: &str) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.env_remove("DATABASE_URL")
        .env("KEYWARD_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .args(args);
    if let Some(url) = database_url {
        cmd.env("DATABASE_URL", url);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[actix_web::test]
async fn with_registration_closed_only_the_cli_creates_users() {
    let app = spawn_app_with(|s| s.registration = keyward::config::Registration::Closed).await;
    let page = app.get_html("/register").await;
    assert!(page.contains("Registration is closed"));
    let res = app.register("mallory").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.user_count(), 0);

    let url = app
        .state
        .settings
        .database_url
        .as_ref()
        .map(|u| keyward::config::ExposeSecret::expose_secret(u).to_owned());
    let out = keyward(
        app.dir.path(),
        url.as_deref(),
        &["user", "create", "Alice", "--email", "alice@example.com"],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("created user alice"));
    assert_eq!(
        app.login_with(&browser(), "alice", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );

    // The CLI applies the same rules as the portal.
    let weak = keyward(
        app.dir.path(),
        url.as_deref(),
        &["user", "create", "bob", "--email", "bob@example.com"],
        "short\n",
    );
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 8 characters"));
    let taken = keyward(
        app.dir.path(),
        url.as_deref(),
        &["user", "create", "ALICE", "--email", "other@example.com"],
        &format!("{PASSWORD}\n"),
    );
    assert!(!taken.status.success());
    assert_eq!(app.user_count(), 1);
}

#[actix_web::test]
async fn migrate_creates_the_database_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let out = keyward(dir.path(), None, &["migrate"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));
    assert!(dir.path().join("keyward.db").exists());
}

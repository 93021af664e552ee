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

/// `keyward check` names the database, its migrations and the running
/// instances, never a secret, and changes nothing; without a database it
/// fails and says so.
#[actix_web::test]
async fn check_reports_the_database_migrations_and_live_instances() {
    let dir = tempfile::tempdir().unwrap();
    let nothing = keyward(dir.path(), None, &["check"], "");
    assert!(!nothing.status.success(), "no database yet");
    let err = String::from_utf8_lossy(&nothing.stderr);
    assert!(err.contains("not reached"), "{err}");
    assert!(!dir.path().join("keyward.db").exists(), "check created no database");

    let secret = [("KEYWARD_METRICS_TOKEN", "check-must-not-print-this")];
    let mut server = Binary::start(dir.path(), &secret).await;
    let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .env_remove("DATABASE_URL")
        .env("KEYWARD_DATA_DIR", dir.path())
        .envs(secret)
        .arg("check")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("(reached)"), "{text}");
    assert!(text.contains(", 0 pending"), "{text}");
    assert!(text.contains("change feed: at "), "{text}");
    assert!(text.contains("live instances: 1"), "{text}");
    let address = server.base.trim_start_matches("http://");
    assert!(text.contains(&format!(" on {address} (")), "{address} in {text}");
    assert!(!text.contains("check-must-not-print-this"), "a secret in: {text}");
    assert!(text.contains("[REDACTED]"), "{text}");

    // A clean stop takes the instance off the list.
    assert!(server.terminate().await.success(), "{}", server.logs());
    let after = keyward(dir.path(), None, &["check"], "");
    let text = String::from_utf8_lossy(&after.stdout);
    assert!(text.contains("live instances: 0"), "{text}");
}

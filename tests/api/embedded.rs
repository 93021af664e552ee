//! The guard embedded in another service: the real `keyward` binary and the
//! real `protect_routes` example, two processes on one database. A key
//! deleted, narrowed or rotated in the portal is refused or narrowed by the
//! example within a second, on SQLite and on PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};

use crate::helpers::*;

/// How long the portal may take to reach the embedded guard (the change
/// feed polls about every 100 ms).
const WITHIN: Duration = Duration::from_secs(1);

/// The `protect_routes` example as built by `cargo test --all-targets`:
/// integration tests run from `target/<profile>/deps/`, examples are built
/// into `target/<profile>/examples/`.
fn example_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile = exe.parent()?.parent()?;
    let path = profile
        .join("examples")
        .join(format!("protect_routes{}", std::env::consts::EXE_SUFFIX));
    path.exists().then_some(path)
}

/// The example on a free loopback port, its output in a log file; killed
/// when dropped, even if the test fails.
struct Example {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Example {
    /// Starts it on `database_url` and waits until it says where it listens.
    async fn start(binary: &Path, database_url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("protect_routes.log");
        let mut command = Command::new(binary);
        command
            .current_dir(dir.path())
            .env("DATABASE_URL", database_url)
            .env("PROTECT_ROUTES_BIND", "127.0.0.1:0")
            .stdin(Stdio::null());
        let (child, base) = spawn_announcing(&mut command, &log, "listening on ").await;
        Self { child, base, _dir: dir }
    }

    async fn get(&self, path: &str, key: &str) -> StatusCode {
        Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn publish(&self, key: &str) -> StatusCode {
        Client::new()
            .post(format!("{}/publish", self.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .status()
    }
}

/// Polls `done` every 20 ms; how long it took to hold, or None after `WITHIN`.
async fn time_until<F, Fut>(mut done: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if done().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > WITHIN {
            return None;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn sign_up(keyward: &Binary, client: &Client) {
    let fields = [
        ("username", "alice"),
        ("email", "alice@example.com"),
        ("password", PASSWORD),
        ("password_confirm", PASSWORD),
    ];
    let res = keyward.post_form(client, "/register", "/register", &fields).await.0;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "registration failed");
}

async fn create_key(keyward: &Binary, client: &Client, name: &str, scopes: &[&str]) -> String {
    let mut fields = vec![("name", name), ("expires_in_days", "")];
    fields.extend(scopes.iter().map(|s| ("scopes", *s)));
    let html = keyward
        .post_form(client, "/keys/new", "/keys", &fields)
        .await
        .0
        .text()
        .await
        .unwrap();
    new_key_in(&html).unwrap_or_else(|| panic!("key {name} not created: {html}"))
}

/// Deletes, narrows and rotates keys on `keyward`'s pages and times how long
/// `example` takes to apply each change.
async fn portal_changes_reach_the_example(backend: &str, keyward: &Binary, example: &Example) {
    let alice = browser();
    sign_up(keyward, &alice).await;
    let deleted = create_key(keyward, &alice, "deleted", &["read"]).await;
    let edited = create_key(keyward, &alice, "edited", &["read", "write"]).await;
    let rotated = create_key(keyward, &alice, "rotated", &["read"]).await;
    // Each key is known to the example (and cached there as valid).
    for key in [&deleted, &edited, &rotated] {
        assert_eq!(example.get("/hello", key).await, StatusCode::OK);
        assert_eq!(example.get("/reports", key).await, StatusCode::OK);
    }
    assert_eq!(example.publish(&edited).await, StatusCode::ACCEPTED);
    assert_eq!(example.publish(&deleted).await, StatusCode::FORBIDDEN, "no `write`");

    // (a) Deleted in the portal: refused.
    let page = format!("/keys/{}", id_of(&deleted));
    let res = keyward.post_form(&alice, &page, &format!("{page}/delete"), &[]).await.0;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "delete");
    let t = time_until(|| async { example.get("/hello", &deleted).await == StatusCode::UNAUTHORIZED }).await;
    let t = t.unwrap_or_else(|| panic!("{backend}: a deleted key is still accepted after {WITHIN:?}"));
    println!("embedded guard ({backend}): delete refused after {} ms", t.as_millis());

    // (b) `read` removed in the portal: /reports refused, the rest still works.
    let page = format!("/keys/{}", id_of(&edited));
    let fields = [
        ("name", "edited"),
        ("scopes", "write"),
        ("allowed_ips", ""),
        ("rate_limit_per_minute", ""),
    ];
    let res = keyward.post_form(&alice, &page, &page, &fields).await.0;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "edit");
    let t = time_until(|| async { example.get("/reports", &edited).await == StatusCode::FORBIDDEN }).await;
    let t = t.unwrap_or_else(|| panic!("{backend}: a key without `read` still reads after {WITHIN:?}"));
    println!(
        "embedded guard ({backend}): scope removal applied after {} ms",
        t.as_millis()
    );
    assert_eq!(
        example.get("/hello", &edited).await,
        StatusCode::OK,
        "narrowed, not refused"
    );
    assert_eq!(example.publish(&edited).await, StatusCode::ACCEPTED, "`write` kept");

    // (c) Rotated with no grace period: the old key refused, the new one works.
    let page = format!("/keys/{}", id_of(&rotated));
    let fields = [("grace_minutes", "0"), ("expires_in_days", "")];
    let res = keyward
        .post_form(&alice, &page, &format!("{page}/rotate"), &fields)
        .await
        .0;
    assert_eq!(res.status(), StatusCode::OK, "rotate");
    let successor = new_key_in(&res.text().await.unwrap()).expect("the new key is shown");
    let t = time_until(|| async {
        example.get("/hello", &rotated).await == StatusCode::UNAUTHORIZED
            && example.get("/hello", &successor).await == StatusCode::OK
    })
    .await;
    let t = t.unwrap_or_else(|| panic!("{backend}: the rotated-out key is still accepted after {WITHIN:?}"));
    println!(
        "embedded guard ({backend}): rotation (grace 0) applied after {} ms",
        t.as_millis()
    );
    assert_eq!(example.get("/reports", &successor).await, StatusCode::OK, "same scopes");
}

#[actix_web::test]
async fn the_embedded_guard_applies_portal_changes_within_a_second_on_sqlite() {
    let Some(example_bin) = example_binary() else {
        println!("skipped: the protect_routes example is not built (cargo test --all-targets builds it)");
        return;
    };
    // Keyward's SQLite file is DATA_DIR/keyward.db: the example opens the same.
    let dir = tempfile::tempdir().unwrap();
    let keyward = Binary::start(dir.path(), &[("RUST_LOG", "warn")]).await;
    let database = dir.path().join("keyward.db");
    assert!(database.exists(), "keyward made its database at {}", database.display());
    let example = Example::start(&example_bin, database.to_str().unwrap()).await;

    portal_changes_reach_the_example("sqlite", &keyward, &example).await;
}

#[actix_web::test]
async fn the_embedded_guard_applies_portal_changes_within_a_second_on_postgresql() {
    let Some(example_bin) = example_binary() else {
        println!("skipped: the protect_routes example is not built (cargo test --all-targets builds it)");
        return;
    };
    let Some(url) =
        crate::pg::fresh_database_or_skip("the_embedded_guard_applies_portal_changes_within_a_second_on_postgresql")
    else {
        return;
    };
    let keyward = Binary::start_fresh(&[("DATABASE_URL", &url), ("RUST_LOG", "warn")]).await;
    let example = Example::start(&example_bin, &url).await;

    portal_changes_reach_the_example("postgresql", &keyward, &example).await;
}

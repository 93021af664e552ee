//! Several Keyward processes on one PostgreSQL database: what a company
//! behind a load balancer runs. Also the SQLite → PostgreSQL copy command.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;
use diesel::prelude::*;
use keyward::db::schema::api_keys;
use reqwest::{Client, StatusCode};

/// A real `keyward serve` process on the shared database.
struct Instance(Binary);

impl std::ops::Deref for Instance {
    type Target = Binary;
    fn deref(&self) -> &Binary {
        &self.0
    }
}

impl Instance {
    async fn start(database_url: &str, flush_seconds: u64) -> Self {
        let flush = flush_seconds.to_string();
        Self(
            Binary::start_fresh(&[
                ("DATABASE_URL", database_url),
                ("KEYWARD_LAST_USED_FLUSH_SECONDS", &flush),
                ("RUST_LOG", "warn"),
            ])
            .await,
        )
    }

    async fn create_key(&self, client: &Client, name: &str, scopes: &[&str]) -> String {
        let mut fields = vec![("name", name), ("expires_in_days", "")];
        fields.extend(scopes.iter().map(|s| ("scopes", *s)));
        let html = self
            .post_form(client, "/keys/new", "/keys", &fields)
            .await
            .0
            .text()
            .await
            .unwrap();
        new_key_in(&html).expect("key shown")
    }

    async fn whoami(&self, key: &str) -> StatusCode {
        Client::new()
            .get(self.url("/api/v1/whoami"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .status()
    }
}

#[actix_web::test]
async fn two_instances_share_keys_revocations_and_last_used_times() {
    let Some(url) = crate::pg::fresh_database_or_skip("two_instances_share_keys_revocations_and_last_used_times")
    else {
        return;
    };
    // A flushes last-used times every second, B only every 3 seconds.
    let mut a = Instance::start(&url, 1).await;
    let mut b = Instance::start(&url, 3).await;
    let alice = browser();
    let res = a
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
        .await
        .0;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let admin = a.create_key(&alice, "admin", &["keys:read", "keys:write"]).await;
    let by_api = a.create_key(&alice, "deleted through the api", &[]).await;
    let by_page = a.create_key(&alice, "deleted on the page", &[]).await;

    // Created on A, works on B (and B now remembers these keys as valid).
    assert_eq!(b.whoami(&by_api).await, StatusCode::OK);
    assert_eq!(b.whoami(&by_page).await, StatusCode::OK);

    // Deleted on A through the API: refused on B within a second.
    let res = Client::new()
        .delete(a.url(&format!("/api/v1/keys/{}", id_of(&by_api))))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(
        refused_within_a_second(&b, &by_api).await,
        "B still accepts a key deleted on A"
    );

    // Deleted on A through the page: the same.
    let id = id_of(&by_page);
    let res = a
        .post_form(
            &alice,
            &format!("/keys/{id}/delete"),
            &format!("/keys/{id}/delete"),
            &[],
        )
        .await
        .0;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        refused_within_a_second(&b, &by_page).await,
        "B still accepts a key deleted on A's page"
    );

    // Last used: B sees a use first, A a later one. A writes first, B its
    // older time afterwards; the database must keep the later one. Each
    // stop flushes what the instance holds, so stopping A, then B, orders
    // the two writes with no waiting on a timer.
    assert_eq!(b.whoami(&admin).await, StatusCode::OK);
    let before_a = keyward::time::now();
    assert_eq!(a.whoami(&admin).await, StatusCode::OK);
    assert!(a.0.terminate().await.success(), "{}", a.logs());
    assert!(b.0.terminate().await.success(), "{}", b.logs());
    let mut conn = diesel::PgConnection::establish(&url).unwrap();
    let last_used: Option<chrono::NaiveDateTime> = api_keys::table
        .find(id_of(&admin))
        .select(api_keys::last_used_at)
        .first(&mut conn)
        .unwrap();
    let last_used = last_used.expect("last use recorded");
    assert!(
        last_used >= before_a,
        "kept {last_used}, but A used the key at {before_a} or later"
    );
}

/// Polls for at most one second; true once `b` refuses the key.
async fn refused_within_a_second(b: &Instance, key: &str) -> bool {
    let start = Instant::now();
    loop {
        if b.whoami(key).await == StatusCode::UNAUTHORIZED {
            return true;
        }
        if start.elapsed() > Duration::from_secs(1) {
            return false;
        }
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
}

fn copy_to(data_dir: &std::path::Path, target: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keyward"))
        .env_remove("DATABASE_URL")
        .env("KEYWARD_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .args(["db", "copy", "--to", target])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[actix_web::test]
async fn a_sqlite_install_moves_to_postgres_with_logins_and_keys_intact() {
    let Some(url) = crate::pg::fresh_database_or_skip("a_sqlite_install_moves_to_postgres_with_logins_and_keys_intact")
    else {
        return;
    };
    let old = spawn_app_with(|s| s.database_url = None).await;
    old.signed_up("alice").await;
    let key = old.create_key("ci", &["keys:read"]).await;
    let bob = old.new_user("bob").await;
    let bobs_key = old.create_key_for(&bob, "bob's", &[]).await;

    let out = copy_to(old.dir.path(), &url);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "copy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("copied 2 users, 2 keys"), "{stdout}");

    let new = spawn_app_with(|s| s.database_url = Some(url.clone().into())).await;
    assert_eq!(
        new.login_with(&browser(), "alice", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(new.api_get("/api/v1/whoami", &key).await.status(), StatusCode::OK);
    assert_eq!(new.api_get("/api/v1/whoami", &bobs_key).await.status(), StatusCode::OK);
    let listed: serde_json::Value = new.api_get("/api/v1/keys", &key).await.json().await.unwrap();
    assert_eq!(listed["keys"][0]["name"], "ci");
    // New accounts get fresh ids after the copied ones.
    assert_eq!(
        new.register_with(&browser(), "carol", "carol@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );

    // A second copy would overwrite: refused, nothing changed.
    let again = copy_to(old.dir.path(), &url);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    assert_eq!(
        new.login_with(&browser(), "carol", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[actix_web::test]
async fn a_rotation_or_an_edit_on_one_instance_is_seen_on_the_other_within_a_second() {
    let Some(url) = crate::pg::fresh_database_or_skip("a_rotation_or_an_edit_on_one_instance_is_seen_on_the_other")
    else {
        return;
    };
    let a = Instance::start(&url, 1).await;
    let b = Instance::start(&url, 1).await;
    let alice = browser();
    a.post_form(
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
    let rotated = a.create_key(&alice, "rotated", &["read"]).await;
    let edited = a.create_key(&alice, "edited", &["read", "keys:read"]).await;
    assert_eq!(b.whoami(&rotated).await, StatusCode::OK);
    let list = |key: String| {
        let url = b.url("/api/v1/keys");
        async move { Client::new().get(url).bearer_auth(key).send().await.unwrap().status() }
    };
    assert_eq!(list(edited.clone()).await, StatusCode::OK, "B knows its scopes");

    let id = id_of(&rotated);
    let (res, _) = a
        .post_form(
            &alice,
            &format!("/keys/{id}"),
            &format!("/keys/{id}/rotate"),
            &[("grace_minutes", "0")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let successor = new_key_in(&res.text().await.unwrap()).unwrap();
    assert!(
        refused_within_a_second(&b, &rotated).await,
        "B still accepts the rotated key"
    );
    assert_eq!(b.whoami(&successor).await, StatusCode::OK);

    let id = id_of(&edited);
    let (res, _) = a
        .post_form(
            &alice,
            &format!("/keys/{id}"),
            &format!("/keys/{id}"),
            &[("name", "edited"), ("scopes", "read")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let start = Instant::now();
    while list(edited.clone()).await != StatusCode::FORBIDDEN {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "B still grants the removed scope"
        );
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }

    // Restrictions too: an allowlist that leaves out 127.0.0.1.
    let (res, _) = a
        .post_form(
            &alice,
            &format!("/keys/{id}"),
            &format!("/keys/{id}"),
            &[("name", "edited"), ("scopes", "read"), ("allowed_ips", "192.0.2.0/24")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let start = Instant::now();
    while b.whoami(&edited).await != StatusCode::FORBIDDEN {
        assert!(start.elapsed() < Duration::from_secs(1), "B ignores the new allowlist");
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
}

#[actix_web::test]
async fn a_reminder_goes_out_once_through_real_smtp_with_two_instances() {
    let Some(url) = crate::pg::fresh_database_or_skip("a_reminder_goes_out_once_with_two_instances") else {
        return;
    };
    let Some(smtp) = crate::mailbox::SmtpServer::start() else {
        return;
    };
    let smtp_url = format!("smtp://127.0.0.1:{}", smtp.port);
    let settings = |s: &mut keyward::config::Settings| {
        s.database_url = Some(url.clone().into());
        s.smtp_url = Some(smtp_url.to_string().into());
        s.reminder_seconds = 3600;
    };
    let a = spawn_app_with(settings).await;
    let b = spawn_app_with(settings).await;
    a.signed_up("alice").await;
    let (status, _) = a.create_key_with(&a.client, "nightly", &[], "1").await;
    assert_eq!(status, StatusCode::OK);
    let mails = crate::mailbox::wait_for_messages(&smtp.new_mail_dir(), 1).await;
    assert_eq!(mails.len(), 1, "the key's creation notice");

    // Both instances look for due reminders, twice each, at the same time.
    let now = keyward::time::now();
    let (sa, sb) = tokio::join!(
        keyward::notices::send_due_reminders(&a.state, now),
        keyward::notices::send_due_reminders(&b.state, now),
    );
    let again = keyward::notices::send_due_reminders(&b.state, now).await.unwrap()
        + keyward::notices::send_due_reminders(&a.state, now).await.unwrap();

    assert_eq!(sa.unwrap() + sb.unwrap() + again, 1, "one instance sends it, once");
    let mails = crate::mailbox::wait_for_messages(&smtp.new_mail_dir(), 2).await;
    let reminders = mails.iter().filter(|m| m.contains("expires tomorrow")).count();
    assert_eq!(reminders, 1);
}

#[actix_web::test]
async fn a_browser_session_made_on_one_instance_works_on_another() {
    let Some(url) = crate::pg::fresh_database_or_skip("a_browser_session_made_on_one_instance_works_on_another") else {
        return;
    };
    // Two instances with data directories of their own: nothing copied.
    let a = spawn_app_with(|s| s.database_url = Some(url.clone().into())).await;
    let b = spawn_app_with(|s| s.database_url = Some(url.clone().into())).await;
    a.signed_up("alice").await;

    // The same browser (cookies are per host, whatever the port).
    assert!(b.is_logged_in(&a.client).await, "B accepts A's session");
    let key = b.create_key_for(&a.client, "made on B", &[]).await;
    assert_eq!(a.api_get("/api/v1/whoami", &key).await.status(), StatusCode::OK);
    assert_eq!(
        std::fs::read(a.dir.path().join("session.key")).unwrap(),
        std::fs::read(b.dir.path().join("session.key")).unwrap(),
        "both keep a copy of the one shared secret"
    );
}

#[actix_web::test]
async fn a_session_key_that_is_not_a_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["not base64!", "c2hvcnQ="] {
        let out = Command::new(env!("CARGO_BIN_EXE_keyward"))
            .env_remove("DATABASE_URL")
            .env("KEYWARD_DATA_DIR", dir.path())
            .env("KEYWARD_BIND", "127.0.0.1:0")
            .env("KEYWARD_SESSION_KEY", bad)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("KEYWARD_SESSION_KEY"),
            "{bad}"
        );
    }
}

//! The change feed: every process that checks keys hears of changes made
//! elsewhere within a second, on SQLite and PostgreSQL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward::keys::{LastUsed, Verifier, VerifyError};
use reqwest::StatusCode;

use crate::helpers::*;

/// Polls `verify` for at most a second; the time it took to be refused.
async fn refused_within_a_second(v: &Verifier, key: &str) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if matches!(v.verify(key).await, Err(VerifyError::Invalid)) {
            return Some(start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(1) {
            return None;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn an_embedded_guard_hears_of_deletes_rotations_and_edits_within_a_second() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let deleted = app.create_key("deleted", &[]).await;
    let rotated = app.create_key("rotated", &[]).await;
    let edited = app.create_key("edited", &["read"]).await;
    // A service embedding the guard: its own verifier on the same database.
    let embedded = Arc::new(Verifier::new(app.state.pool.clone(), Arc::new(LastUsed::default())));
    embedded.follow_changes().unwrap();
    for key in [&deleted, &rotated, &edited] {
        assert!(embedded.verify(key).await.is_ok(), "known and cached");
    }

    app.post_form(&format!("/keys/{}/delete", id_of(&deleted)), &[]).await;
    let t = refused_within_a_second(&embedded, &deleted).await;
    assert!(t.is_some(), "a deleted key is still accepted after a second");
    println!("deleted key refused by the embedded guard after {t:?}");

    app.post_form(&format!("/keys/{}/rotate", id_of(&rotated)), &[("grace_minutes", "0")])
        .await;
    let t = refused_within_a_second(&embedded, &rotated).await;
    assert!(t.is_some(), "a rotated key is still accepted after a second");
    println!("rotated key refused by the embedded guard after {t:?}");

    let res = app
        .post_form(
            &format!("/keys/{}", id_of(&edited)),
            &[("name", "edited"), ("scopes", "write")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let start = Instant::now();
    loop {
        let key = embedded.verify(&edited).await.unwrap();
        if !key.has_scope("read") {
            println!("edit seen by the embedded guard after {:?}", start.elapsed());
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the removed scope is still granted"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn a_key_revoked_with_the_cli_is_refused_by_the_running_server_within_a_second() {
    if crate::pg::selected() {
        println!("skipped: the CLI is driven on the SQLite pass");
        return;
    }
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;
    assert_eq!(app.api_get("/api/v1/whoami", &key).await.status(), StatusCode::OK);

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyward"))
        .env_remove("DATABASE_URL")
        .env("KEYWARD_DATA_DIR", app.dir.path())
        .args(["keys", "revoke", &prefix_of(&key)])
        .output()
        .unwrap();
    assert!(out.status.success());

    let start = Instant::now();
    while app.api_get("/api/v1/whoami", &key).await.status() != StatusCode::UNAUTHORIZED {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "still accepted after a second"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    println!("CLI revocation seen after {:?}", start.elapsed());
}

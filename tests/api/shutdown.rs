//! docs/architecture.md, "Last-used batching": no accepted use is lost on a
//! clean shutdown. Last-used times wait in memory for the next flush;
//! stopping the server writes them. The flush interval is an hour here, so
//! only the shutdown can write them.

use crate::helpers::*;
use diesel::prelude::*;
use keyward::db::schema::{api_keys, users};
use keyward::db::{self, DatabaseUrl, Pool};
use keyward::keys::format::{self, KeyTag};
use keyward::keys::store;
use reqwest::{Client, StatusCode};

fn stored_last_used(pool: &Pool, key_id: &str) -> Option<chrono::NaiveDateTime> {
    api_keys::table
        .filter(api_keys::id.eq(key_id))
        .select(api_keys::last_used_at)
        .first(&mut *pool.get().expect("connection"))
        .expect("the key is stored")
}

#[actix_web::test]
async fn a_graceful_stop_writes_the_pending_last_used_times() {
    let mut app = spawn_app_with(|s| s.last_used_flush_seconds = 3600).await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;
    assert_eq!(app.api_get("/api/v1/whoami", &key).await.status(), StatusCode::OK);
    assert_eq!(stored_last_used(&app.state.pool, &id_of(&key)), None, "not written yet");
    assert!(app.state.verifier.last_used().pending(&id_of(&key)).is_some());

    app.handle.stop(true).await;
    let finished = (&mut app.running).await;

    assert!(
        matches!(finished, Ok(Ok(()))),
        "run_until_stopped ended cleanly: {finished:?}"
    );
    assert!(
        stored_last_used(&app.state.pool, &id_of(&key)).is_some(),
        "the use was written on shutdown"
    );
    assert_eq!(app.state.verifier.last_used().pending_count(), 0);
}

/// A user and a key written straight into the running binary's database.
fn insert_key(pool: &Pool) -> (String, String) {
    let mut conn = pool.get().unwrap();
    diesel::insert_into(users::table)
        .values((
            users::username.eq("alice"),
            users::email.eq("alice@example.com"),
            users::password_hash.eq("not a usable hash"),
            users::created_at.eq(keyward::time::now()),
        ))
        .execute(&mut *conn)
        .unwrap();
    let user_id: i64 = users::table.select(users::id).first(&mut *conn).unwrap();
    let g = format::generate(&KeyTag::parse("kw").unwrap());
    store::insert(
        &mut conn,
        &store::NewKey {
            id: &g.id,
            user_id,
            name: "ci",
            prefix: &g.display_prefix,
            digest: g.digest.as_bytes(),
            scopes: "",
            created_at: keyward::time::now(),
            expires_at: None,
            allowed_ips: "",
            rate_limit_per_minute: None,
        },
    )
    .unwrap();
    (g.key.expose().to_owned(), g.id)
}

#[actix_web::test]
async fn sigterm_writes_the_pending_last_used_times_before_the_binary_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut binary = Binary::start(dir.path(), &[("KEYWARD_LAST_USED_FLUSH_SECONDS", "3600")]).await;
    let pool = db::migrate_and_connect(&DatabaseUrl::Sqlite(
        dir.path().join("keyward.db").to_string_lossy().into_owned(),
    ))
    .unwrap();
    let (key, id) = insert_key(&pool);
    let res = Client::new()
        .get(binary.url("/api/v1/whoami"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(stored_last_used(&pool, &id), None, "not written yet");

    let status = binary.terminate().await;
    assert!(status.success(), "exit status {status}; logs:\n{}", binary.logs());
    assert!(
        stored_last_used(&pool, &id).is_some(),
        "the use was written before exiting; logs:\n{}",
        binary.logs()
    );
}

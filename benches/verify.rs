//! Micro-benchmarks of key verification: the pure format work, a cache hit
//! through `Verifier::verify`, and a cold lookup among 100,000 keys in
//! SQLite. `cargo bench --bench verify`; results and how they relate to the
//! load test are in BENCHMARKS.md.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use diesel::prelude::*;
use keyward::db::schema::users;
use keyward::db::{self, DatabaseUrl, Pool};
use keyward::keys::format::{self, KeyTag};
use keyward::keys::{store, LastUsed, Verifier};

const KEYS_IN_DB: usize = 100_000;

fn tag() -> KeyTag {
    KeyTag::parse("kw").expect("valid tag")
}

/// Polls a future that must finish without waiting (a cache hit does).
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("expected a cache hit, but verification waited"),
    }
}

/// A fresh SQLite database with one user owning `n` keys; returns the pool,
/// the full keys (the benchmark plays the callers) and the temp dir.
fn database_with_keys(n: usize) -> (Pool, Vec<String>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = DatabaseUrl::Sqlite(dir.path().join("bench.db").to_string_lossy().into_owned());
    let pool = db::migrate_and_connect(&url).expect("database");
    let mut conn = pool.get().expect("connection");
    let now = keyward::time::now();
    diesel::insert_into(users::table)
        .values((
            users::username.eq("bench"),
            users::email.eq("bench@example.com"),
            users::password_hash.eq("x"),
            users::created_at.eq(now),
        ))
        .execute(&mut *conn)
        .expect("user");
    let user_id: i64 = users::table.select(users::id).first(&mut *conn).expect("user id");
    let tag = tag();
    let mut keys = Vec::with_capacity(n);
    conn.transaction::<_, diesel::result::Error, _>(|conn| {
        for i in 0..n {
            let g = format::generate(&tag);
            store::insert_generated(conn, &g, user_id, &format!("key {i}"), "read write", None)?;
            keys.push(g.key.expose().to_owned());
        }
        Ok(())
    })
    .expect("keys inserted");
    drop(conn);
    (pool, keys, dir)
}

fn format_work(c: &mut Criterion) {
    let key = format::generate(&tag()).key.expose().to_owned();
    let body = &key[..key.len() - format::CHECK_LEN];
    let mut g = c.benchmark_group("format");
    g.bench_function("checksum (crc32 + base62)", |b| {
        b.iter(|| format::checksum(black_box(body)))
    });
    g.bench_function("digest (sha-256)", |b| {
        b.iter(|| format::KeyDigest::of(black_box(&key)))
    });
    g.bench_function("parse + checksum + digest", |b| {
        b.iter(|| format::parse_parts(black_box(&key)).map(|p| p.digest))
    });
    g.finish();
}

fn cache_hit(c: &mut Criterion) {
    let (pool, keys, _dir) = database_with_keys(1);
    let verifier = Verifier::new(pool, Arc::new(LastUsed::default()));
    let key = keys[0].clone();
    // The first call fills the cache from the database (on actix's blocking
    // pool); every measured call is then answered from memory.
    actix_web::rt::System::new()
        .block_on(verifier.verify(&key))
        .expect("the key verifies");
    let mut g = c.benchmark_group("verify");
    g.bench_function("cache hit (Verifier::verify)", |b| {
        b.iter(|| ready(verifier.verify(black_box(&key))).map(|k| k.user_id))
    });
    g.bench_function("negative cache hit (unknown id)", |b| {
        let unknown = format::generate(&tag()).key.expose().to_owned();
        let _ = actix_web::rt::System::new().block_on(verifier.verify(&unknown));
        b.iter(|| ready(verifier.verify(black_box(&unknown))).is_err())
    });
    g.finish();
}

fn cold_lookup(c: &mut Criterion) {
    let (pool, keys, _dir) = database_with_keys(KEYS_IN_DB);
    let ids: Vec<String> = keys.iter().map(|k| format::parse(k).expect("valid").id).collect();
    let mut g = c.benchmark_group("cold lookup, 100k keys in SQLite");
    let mut conn = pool.get().expect("connection");
    let mut i = 0usize;
    g.bench_function("store::find_for_verify (the query alone)", |b| {
        b.iter(|| {
            i = (i + 1) % ids.len();
            store::find_for_verify(&mut conn, black_box(&ids[i])).expect("query")
        })
    });
    drop(conn);
    let verifier = Verifier::new(pool, Arc::new(LastUsed::default()));
    let system = actix_web::rt::System::new();
    let mut j = 0usize;
    g.bench_function("Verifier::verify after forget (query on the blocking pool)", |b| {
        b.iter_batched(
            || {
                j = (j + 1) % keys.len();
                verifier.forget(&ids[j]);
                j
            },
            |j| system.block_on(verifier.verify(&keys[j])).expect("verifies").user_id,
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, format_work, cache_hit, cold_lookup);
criterion_main!(benches);

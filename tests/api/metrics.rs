//! `GET /metrics`: the guard's counters in the Prometheus text format.

use crate::helpers::*;
use keyward::keys::format::{self, KeyTag};
use reqwest::{Client, StatusCode};

const METRICS_TOKEN: &str = "scrape-me-3f9a";

async fn app_with_metrics(flush_seconds: u64) -> TestApp {
    spawn_app_with(|s| {
        s.last_used_flush_seconds = flush_seconds;
        s.metrics_token = Some(METRICS_TOKEN.to_owned().into());
    })
    .await
}

/// Every sample of a scrape, `series value` per line.
struct Scrape(String);

impl Scrape {
    async fn of(app: &TestApp) -> Self {
        let res = Client::new()
            .get(app.url("/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        Self(res.text().await.unwrap())
    }

    /// The value of one series, e.g. `keyward_key_verifications_total{outcome="ok"}`.
    fn value(&self, series: &str) -> u64 {
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{}", self.0))
            .parse()
            .unwrap()
    }
}

#[actix_web::test]
async fn the_counters_move_with_each_kind_of_call() {
    let app = app_with_metrics(3600).await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &[]).await;
    let unknown = format::generate(&KeyTag::parse("kw").unwrap());
    let before = Scrape::of(&app).await;

    for _ in 0..2 {
        assert_eq!(app.api_get("/api/v1/whoami", &key).await.status(), StatusCode::OK);
    }
    for _ in 0..2 {
        let res = app.api_get("/api/v1/whoami", unknown.key.expose()).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    app.api_get("/api/v1/whoami", "kw_garbage").await;
    Client::new().get(app.url("/api/v1/whoami")).send().await.unwrap();

    let after = Scrape::of(&app).await;
    let moved = |series: &str| after.value(series) - before.value(series);
    assert_eq!(moved(r#"keyward_key_verifications_total{outcome="ok"}"#), 2);
    assert_eq!(moved(r#"keyward_key_verifications_total{outcome="invalid"}"#), 3);
    assert_eq!(moved(r#"keyward_key_verifications_total{outcome="missing"}"#), 1);
    assert_eq!(moved(r#"keyward_key_verifications_total{outcome="error"}"#), 0);
    // The first use of each key asks the database; the second is cached.
    assert_eq!(moved(r#"keyward_key_cache_misses_total{cache="positive"}"#), 1);
    assert_eq!(moved(r#"keyward_key_cache_hits_total{cache="positive"}"#), 1);
    assert_eq!(moved(r#"keyward_key_cache_misses_total{cache="negative"}"#), 1);
    assert_eq!(moved(r#"keyward_key_cache_hits_total{cache="negative"}"#), 1);
    assert_eq!(
        moved("keyward_key_db_lookups_total"),
        2,
        "garbage never reaches the database"
    );
    // Timed: the keys that get past their shape and checksum (the garbage
    // one is refused before the clock is read).
    assert_eq!(moved("keyward_key_verification_duration_seconds_count"), 4);
    assert_eq!(
        moved(r#"keyward_key_verification_duration_seconds_bucket{le="+Inf"}"#),
        4
    );
    assert_eq!(after.value("keyward_last_used_pending"), 1);
    assert_eq!(after.value(r#"keyward_key_cache_entries{cache="positive"}"#), 1);
}

#[actix_web::test]
async fn metrics_are_plain_text_for_the_token_holder_and_set_no_cookie() {
    let app = app_with_metrics(1).await;

    let res = Client::new()
        .get(app.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();

    assert_eq!(res.status(), StatusCode::OK);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    assert!(res.headers().get("set-cookie").is_none());
    let body = res.text().await.unwrap();
    assert!(body.contains("# TYPE keyward_key_verification_duration_seconds histogram"));
}

#[actix_web::test]
async fn metrics_need_the_token_and_are_not_served_without_one() {
    let with_token = app_with_metrics(1).await;
    for sent in [None, Some("wrong"), Some("scrape-me-3f9")] {
        let mut req = Client::new().get(with_token.url("/metrics"));
        if let Some(t) = sent {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{sent:?}");
        assert!(!res.text().await.unwrap().contains("keyward_key"), "{sent:?}");
    }

    let without = spawn_app().await;
    let res = Client::new()
        .get(without.url("/metrics"))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn the_ping_route_answers_without_a_key() {
    let app = spawn_app().await;

    let res = Client::new().get(app.url("/api/v1/ping")).send().await.unwrap();

    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), r#"{"status":"ok"}"#);
}

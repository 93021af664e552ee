//! Per-key restrictions: address allowlists and rate limits, on the API,
//! on /auth/verify, and through a trusted proxy's forwarded address.

use chrono::Duration;
use reqwest::{Client, StatusCode};

use crate::helpers::*;

async fn restricted_key(app: &TestApp, name: &str, allowed_ips: &str, rate: &str) -> String {
    let res = app
        .post_form(
            "/keys",
            &[
                ("name", name),
                ("scopes", "read"),
                ("allowed_ips", allowed_ips),
                ("rate_limit_per_minute", rate),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    new_key_in(&res.text().await.unwrap()).unwrap()
}

/// A call to `path` with `key`, forwarded by the (trusted, loopback) proxy
/// for `client` when given.
async fn call_from(app: &TestApp, path: &str, key: &str, client: Option<&str>) -> reqwest::Response {
    let mut req = Client::new().get(app.url(path)).bearer_auth(key);
    if let Some(c) = client {
        req = req.header("x-forwarded-for", c);
    }
    req.send().await.unwrap()
}

#[actix_web::test]
async fn an_allowlisted_key_works_only_from_its_addresses() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = restricted_key(&app, "office", "203.0.113.7, 10.0.0.0/8\n2001:db8::/32", "").await;

    for (client, expected) in [
        ("203.0.113.7", StatusCode::OK),
        ("10.20.30.40", StatusCode::OK),
        ("2001:db8::beef", StatusCode::OK),
        ("198.51.100.1, 10.1.1.1", StatusCode::OK),
        ("203.0.113.8", StatusCode::FORBIDDEN),
        ("2001:db9::1", StatusCode::FORBIDDEN),
        ("10.1.1.1, 198.51.100.1", StatusCode::FORBIDDEN),
    ] {
        for path in ["/api/v1/whoami", "/auth/verify?scope=read"] {
            let res = call_from(&app, path, &key, Some(client)).await;
            assert_eq!(res.status(), expected, "{path} from {client}");
            if expected == StatusCode::FORBIDDEN {
                assert_eq!(res.text().await.unwrap(), r#"{"error":"address_not_allowed"}"#);
            }
        }
    }
    // The proxy itself (127.0.0.1, no forwarded header) is not listed.
    assert_eq!(
        call_from(&app, "/api/v1/whoami", &key, None).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[actix_web::test]
async fn an_untrusted_peer_cannot_unlock_a_key_with_forwarded_headers() {
    let app = spawn_app_with(|s| s.trusted_proxies = keyward::net::TrustedProxies::none()).await;
    app.signed_up("alice").await;
    let key = restricted_key(&app, "office", "203.0.113.7", "").await;

    let res = Client::new()
        .get(app.url("/api/v1/whoami"))
        .bearer_auth(&key)
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-real-ip", "203.0.113.7")
        .send()
        .await
        .unwrap();

    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn a_rate_limited_key_gets_n_calls_then_429_and_refills() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = restricted_key(&app, "batch", "", "3").await;
    let plain = app.create_key("plain", &[]).await;

    for remaining in ["2", "1", "0"] {
        let res = call_from(&app, "/api/v1/whoami", &key, None).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["ratelimit-limit"], "3");
        assert_eq!(res.headers()["ratelimit-remaining"], remaining);
        assert!(res.headers().contains_key("ratelimit-reset"));
    }
    let res = call_from(&app, "/auth/verify", &key, None).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "20");
    assert_eq!(res.headers()["ratelimit-remaining"], "0");
    assert_eq!(res.text().await.unwrap(), r#"{"error":"rate_limited"}"#);
    // Other keys are not limited, and carry no RateLimit headers.
    let res = call_from(&app, "/api/v1/whoami", &plain, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!res.headers().contains_key("ratelimit-limit"));

    app.state.verifier.skew_clock(Duration::seconds(20));
    assert_eq!(
        call_from(&app, "/api/v1/whoami", &key, None).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        call_from(&app, "/api/v1/whoami", &key, None).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    app.state.verifier.skew_clock(Duration::minutes(1));
    for _ in 0..3 {
        assert_eq!(
            call_from(&app, "/api/v1/whoami", &key, None).await.status(),
            StatusCode::OK
        );
    }
}

#[actix_web::test]
async fn restrictions_edited_on_the_key_page_apply_at_once() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    let key = app.create_key("ci", &["read"]).await;
    assert_eq!(
        call_from(&app, "/api/v1/whoami", &key, None).await.status(),
        StatusCode::OK
    );

    let res = app
        .post_form(
            &format!("/keys/{}", id_of(&key)),
            &[
                ("name", "ci"),
                ("scopes", "read"),
                ("allowed_ips", "192.0.2.0/24"),
                ("rate_limit_per_minute", "1"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    assert_eq!(
        call_from(&app, "/api/v1/whoami", &key, None).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call_from(&app, "/api/v1/whoami", &key, Some("192.0.2.9"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        call_from(&app, "/api/v1/whoami", &key, Some("192.0.2.9"))
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let page = app.get_html(&format!("/keys/{}", id_of(&key))).await;
    assert!(page.contains("192.0.2.0/24") && page.contains("1 calls per minute"));
}

#[actix_web::test]
async fn invalid_restrictions_re_render_the_form_and_change_nothing() {
    let app = spawn_app().await;
    app.signed_up("alice").await;
    for (ips, rate, message) in [
        ("10.0.0.0/33", "", "not an IP address or network"),
        ("example.com", "", "not an IP address or network"),
        ("", "0", "from 1 to 1,000,000"),
        ("", "1000001", "from 1 to 1,000,000"),
        ("", "lots", "from 1 to 1,000,000"),
    ] {
        let res = app
            .post_form(
                "/keys",
                &[("name", "bad"), ("allowed_ips", ips), ("rate_limit_per_minute", rate)],
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{ips} {rate}");
        let html = res.text().await.unwrap();
        assert!(html.contains(message), "{ips} {rate}: {message}");
        assert!(
            html.contains(&format!(r#"value="{rate}""#)) || rate.is_empty(),
            "keeps what was typed"
        );
    }
    assert_eq!(app.key_count(), 0);

    let key = app.create_key("ok", &["read"]).await;
    let res = app
        .post_form(
            &format!("/keys/{}", id_of(&key)),
            &[
                ("name", "ok"),
                ("scopes", "read"),
                ("allowed_ips", "::g"),
                ("rate_limit_per_minute", ""),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        call_from(&app, "/api/v1/whoami", &key, None).await.status(),
        StatusCode::OK
    );
}

#[actix_web::test]
async fn refusals_are_counted_by_reason_and_shown_on_the_key_page() {
    let app = spawn_app_with(|s| s.metrics_token = Some("m".to_owned().into())).await;
    app.signed_up("alice").await;
    let fenced = restricted_key(&app, "fenced", "192.0.2.0/24", "").await;
    let limited = restricted_key(&app, "limited", "", "1").await;
    for _ in 0..2 {
        call_from(&app, "/api/v1/whoami", &fenced, Some("198.51.100.4")).await;
    }
    for _ in 0..3 {
        call_from(&app, "/api/v1/whoami", &limited, None).await;
    }

    let metrics = Client::new()
        .get(app.url("/metrics"))
        .bearer_auth("m")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"keyward_key_verifications_total{outcome="address_not_allowed"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"keyward_key_verifications_total{outcome="rate_limited"} 2"#),
        "{metrics}"
    );

    let page = app.get_html(&format!("/keys/{}", id_of(&fenced))).await;
    let refusals = page.split(r#"class="refusals""#).nth(1).expect("a refusals table");
    assert!(refusals.contains(r#"data-refusal="address not allowed""#) && refusals.contains("198.51.100.4"));
    assert!(refusals.contains("<td>2</td>"), "two calls in one entry");
    let page = app.get_html(&format!("/keys/{}", id_of(&limited))).await;
    assert!(page.contains(r#"data-refusal="over the rate limit""#));
}

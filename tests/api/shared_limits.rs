//! Abuse limits counted once for every instance on one database: with
//! three instances on one PostgreSQL, an attacker gets the budget one
//! instance gives, not three times as much (docs/login-throttling.md).

use std::time::Duration;

use keyward::accounts::throttle::{Attempt, LoginLimits, RateLimit, Store};
use keyward::time::Clock;
use reqwest::StatusCode;

use crate::helpers::*;

/// Wrong passwords for `user` from fresh browsers (no device cookie), on
/// each instance in turn, until one answers 429: how many were checked.
async fn failures_until_locked(apps: &[&TestApp], user: &str) -> usize {
    for n in 0..40 {
        let app = apps[n % apps.len()];
        let status = app
            .login_with(&browser(), user, &format!("wrong guess {n}"))
            .await
            .status();
        match status {
            StatusCode::UNAUTHORIZED => continue,
            StatusCode::TOO_MANY_REQUESTS => return n,
            other => panic!("attempt {n} on instance {}: {other}", n % apps.len()),
        }
    }
    panic!("never locked out");
}

async fn instance(url: &str) -> TestApp {
    let url = url.to_owned();
    // A lock-out far longer than the test, however slow the hashing.
    spawn_app_with(move |s| {
        s.database_url = Some(url.into());
        s.login_lockout_seconds = 600;
    })
    .await
}

#[actix_web::test]
async fn three_instances_on_one_postgres_allow_together_the_failed_logins_one_allows() {
    let Some(url) = crate::pg::fresh_database_or_skip("three_instances_allow_together_the_failed_logins_one_allows")
    else {
        return;
    };
    let (a, b, c) = (instance(&url).await, instance(&url).await, instance(&url).await);
    a.signed_up("alice").await;
    b.register_with(&browser(), "bob", "bob@example.com", PASSWORD).await;

    // One instance: bob's budget.
    let alone = failures_until_locked(&[&b], "bob").await;
    // Three instances, in turn: alice's.
    let together = failures_until_locked(&[&a, &b, &c], "alice").await;

    assert_eq!(alone, 5, "the per-(username, address) limit");
    assert_eq!(together, alone, "three instances give one budget, not three");
    // Locked on every instance, even with the right password.
    for (name, app) in [("a", &a), ("b", &b), ("c", &c)] {
        let res = app.login_with(&browser(), "alice", PASSWORD).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "instance {name}");
        assert!(res.headers().contains_key("retry-after"), "instance {name}");
    }
    // Lifted when the lock-out ends (the instance's clock, moved).
    c.state.clock.advance(Duration::from_secs(601));
    assert_eq!(
        c.login_with(&browser(), "alice", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[actix_web::test]
async fn failed_logins_racing_on_three_instances_get_exactly_one_budget() {
    let Some(url) = crate::pg::fresh_database_or_skip("failed_logins_racing_on_three_instances_get_exactly_one_budget")
    else {
        return;
    };
    let (a, b, c) = (instance(&url).await, instance(&url).await, instance(&url).await);
    a.signed_up("alice").await;
    let apps = [&a, &b, &c];
    // 15 wrong guesses at once, 5 on each instance: every charge takes
    // the rows' locks in turn, so exactly five are checked.
    let guesses = (0..15).map(|n| {
        let app = apps[n % 3];
        async move {
            app.login_with(&browser(), "alice", &format!("racing guess {n}"))
                .await
                .status()
        }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((checked, refused), (5, 10), "{statuses:?}");
}

#[actix_web::test]
async fn three_instances_on_one_postgres_share_the_reset_request_limits() {
    let Some(url) = crate::pg::fresh_database_or_skip("three_instances_share_the_reset_request_limits") else {
        return;
    };
    let (a, b, c) = (instance(&url).await, instance(&url).await, instance(&url).await);
    let apps = [&a, &b, &c];
    // 30 requests per address in 15 minutes, wherever they land.
    for n in 0..30 {
        let app = apps[n % 3];
        let res = app
            .post_form_with(
                &browser(),
                "/password/forgot",
                &[("email", &format!("who{n}@example.com"))],
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "request {n}");
    }
    for (name, app) in [("a", &a), ("b", &b), ("c", &c)] {
        let res = app
            .post_form_with(&browser(), "/password/forgot", &[("email", "one.more@example.com")])
            .await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "instance {name}");
    }
    // 3 mails per account, wherever the requests land.
    let allowed = {
        let mut n = 0;
        for i in 0..6 {
            if apps[i % 3]
                .state
                .reset_per_account
                .allow("the same account")
                .await
                .unwrap()
            {
                n += 1;
            }
        }
        n
    };
    assert_eq!(allowed, 3);
}

async fn locked(l: &LoginLimits, a: Attempt) -> bool {
    l.check(&a).await.unwrap().is_some()
}

/// The same story told to the memory store and to the database store (on
/// this run's backend): both must answer alike at every step.
#[actix_web::test]
async fn the_database_store_keeps_the_rules_of_the_memory_store() {
    let app = spawn_app().await;
    let memory_clock = Clock::default();
    let db_clock = Clock::default();
    let limits = |clock: &Clock, store: &Store| {
        LoginLimits::new(3, Duration::from_secs(900), Duration::from_secs(30))
            .with_clock(clock)
            .with_store(store)
    };
    let memory = limits(&memory_clock, &Store::Memory);
    let database = limits(&db_clock, &Store::Database(app.state.pool.clone()));
    let advance = |d: Duration| {
        memory_clock.advance(d);
        db_clock.advance(d);
    };
    let at = |user: &str, addr: &str| Attempt::new(user, addr, None);

    for store in [&memory, &database] {
        // Three failures lock the pair; a success elsewhere does not help.
        for _ in 0..3 {
            assert!(store.charge(&at("alice", "10.0.0.1")).await.unwrap().is_none());
        }
        let wait = store.charge(&at("alice", "10.0.0.1")).await.unwrap();
        assert!(wait.is_some_and(|w| w <= Duration::from_secs(30)), "{wait:?}");
        assert!(!locked(store, at("alice", "10.0.0.2")).await, "another address");
        // A success refunds the address once and clears the account.
        let own = at("mallory", "10.0.0.3");
        assert!(store.charge(&own).await.unwrap().is_none());
        store.succeeded(&own).await.unwrap();
        // A device cookie is judged on its own.
        let device = Attempt::new("alice", "10.0.0.1", Some("a device id".into()));
        assert!(!locked(store, device).await);
    }
    // The lock-out doubles with the next failure once it has lifted.
    advance(Duration::from_secs(31));
    for store in [&memory, &database] {
        assert!(!locked(store, at("alice", "10.0.0.1")).await);
        assert!(store.charge(&at("alice", "10.0.0.1")).await.unwrap().is_none());
        let wait = store.check(&at("alice", "10.0.0.1")).await.unwrap().unwrap();
        assert!(
            wait > Duration::from_secs(30) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
    }
    // A new window after 15 quiet minutes (and the lock-out over).
    advance(Duration::from_secs(901));
    for store in [&memory, &database] {
        assert!(store.charge(&at("alice", "10.0.0.1")).await.unwrap().is_none());
        assert!(!locked(store, at("alice", "10.0.0.1")).await, "counting from one again");
    }

    // Rate limits: two per minute, per key.
    let rate = RateLimit::new("test:rate", 2, Duration::from_secs(60))
        .with_clock(&db_clock)
        .with_store(&Store::Database(app.state.pool.clone()));
    assert!(rate.allow("k").await.unwrap());
    assert!(rate.allow("k").await.unwrap());
    assert!(!rate.allow("k").await.unwrap());
    assert!(rate.allow("other").await.unwrap());
    db_clock.advance(Duration::from_secs(60));
    assert!(rate.allow("k").await.unwrap());
}

/// What the counts table holds: names and addresses as typed (both are in
/// the audit log already), never a device id or an email address.
#[actix_web::test]
async fn the_counts_table_holds_no_device_id_or_email_address() {
    let app = spawn_app().await;
    let store = Store::Database(app.state.pool.clone());
    let limits = LoginLimits::new(5, Duration::from_secs(900), Duration::from_secs(30)).with_store(&store);
    limits
        .failed(&Attempt::new("alice", "10.0.0.1", Some("DeviceIdSecret123".into())))
        .await
        .unwrap();
    let reset = RateLimit::new("reset:account", 3, Duration::from_secs(900)).with_store(&store);
    reset
        .allow(&keyward::accounts::throttle::digest("alice@example.com"))
        .await
        .unwrap();
    use diesel::prelude::*;
    use keyward::db::schema::throttle_counters as t;
    let keys: Vec<String> = t::table.select(t::key).load(&mut *app.db()).unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys.iter()
            .all(|k| !k.contains("DeviceIdSecret123") && !k.contains("example.com")),
        "{keys:?}"
    );
}

//! Abuse limits: login throttling and the rate limits on reset requests,
//! registrations and public revocations.
//!
//! Where the counts live is the `Store`: in memory on SQLite (one instance
//! per database file, so memory is the whole truth and costs nothing), in
//! the database on PostgreSQL (`throttle_counters`, see `counters`), so
//! that every instance on one database counts against one budget. Both
//! stores apply the same rules (`Failures`). A lock-out always ends by
//! itself, so an attacker can slow a victim's logins down but never lock
//! them out for good. How the login limits combine, and why, is in
//! docs/login-throttling.md.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use sha2::{Digest as _, Sha256};

use crate::db::Pool;
use crate::time::Clock;

/// Entries kept in memory before stale ones are pruned.
const MAX_ENTRIES: usize = 100_000;

/// Where the counts are kept.
#[derive(Clone, Default)]
pub enum Store {
    /// In this process: right for one instance (SQLite).
    #[default]
    Memory,
    /// In the database's `throttle_counters`, shared by every instance on
    /// it (PostgreSQL).
    Database(Pool),
}

impl Store {
    /// Memory on SQLite, the database on PostgreSQL.
    pub fn for_database(url: &crate::db::DatabaseUrl, pool: &Pool) -> Self {
        if url.is_postgres() {
            Self::Database(pool.clone())
        } else {
            Self::Memory
        }
    }
}

/// A point in time, as the two stores keep it: a monotonic `Instant` in
/// memory, the calendar time in the database (shared between machines).
pub(crate) trait Moment: Copy + Ord {
    fn after(self, d: Duration) -> Self;
    /// How long after `earlier` this is (zero if before it).
    fn since(self, earlier: Self) -> Duration;
}

impl Moment for Instant {
    fn after(self, d: Duration) -> Self {
        self + d
    }
    fn since(self, earlier: Self) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

impl Moment for NaiveDateTime {
    fn after(self, d: Duration) -> Self {
        chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| self.checked_add_signed(d))
            .unwrap_or(self)
    }
    fn since(self, earlier: Self) -> Duration {
        (self - earlier).to_std().unwrap_or_default()
    }
}

/// One limit: its name in the database and its figures.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limit {
    /// The `scope` column: which limit a row counts for.
    pub scope: &'static str,
    /// Failures (or events) allowed within `window`.
    pub max: u32,
    pub window: Duration,
    /// The first lock-out (failure limits only).
    pub lockout: Duration,
}

/// The failures counted against one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Failures<T> {
    pub count: u32,
    pub window_start: T,
    pub locked_until: Option<T>,
}

impl<T: Moment> Failures<T> {
    pub fn new(now: T) -> Self {
        Self {
            count: 0,
            window_start: now,
            locked_until: None,
        }
    }

    /// How long this key stays locked out, if it is.
    pub fn wait(&self, now: T) -> Option<Duration> {
        self.locked_until.filter(|u| *u > now).map(|u| u.since(now))
    }

    /// After `limit.max` failures within the window, further attempts are
    /// refused for `limit.lockout`, doubling with each further failure
    /// (capped at the window).
    pub fn fail(&mut self, now: T, limit: &Limit) {
        if now.since(self.window_start) > limit.window && self.locked_until.is_none_or(|u| u <= now) {
            *self = Self::new(now);
        }
        self.count += 1;
        if self.count >= limit.max {
            let doublings = (self.count - limit.max).min(16);
            let lock = limit
                .lockout
                .saturating_mul(1 << doublings)
                .min(limit.window.max(limit.lockout));
            self.locked_until = Some(now.after(lock));
        }
    }

    /// Takes back one failure counted in advance.
    pub fn refund(&mut self, limit: &Limit) {
        self.count = self.count.saturating_sub(1);
        if self.count < limit.max {
            self.locked_until = None;
        }
    }

    /// Counts one event of a rate limit: false (and nothing counted) when
    /// `limit.max` events were already counted in the window that started
    /// with the first of them.
    pub fn take(&mut self, now: T, limit: &Limit) -> bool {
        if now.since(self.window_start) >= limit.window {
            *self = Self::new(now);
        }
        if self.count >= limit.max {
            return false;
        }
        self.count += 1;
        true
    }

    /// Still worth keeping: its window or its lock-out is not over.
    pub fn live(&self, now: T, window: Duration) -> bool {
        now.since(self.window_start) < window || self.locked_until.is_some_and(|u| u > now)
    }
}

/// What a success does to one count.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Settle {
    /// Forget it.
    Clear,
    /// Take back the failure charged in advance.
    Refund,
}

/// A stand-in for a value that is not to be stored as it is (a device id,
/// an email address): 128 bits of its SHA-256, in hex.
pub fn digest(value: &str) -> String {
    Sha256::digest(value.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A failure limit on one kind of key (a user, an address, …).
pub struct LoginThrottle {
    limit: Limit,
    clock: Clock,
    store: Store,
    entries: Mutex<HashMap<String, Failures<Instant>>>,
}

impl LoginThrottle {
    /// `scope` names it in the database; after `max_failures` failures
    /// within `window`, a lock-out of `lockout` that doubles with each
    /// further failure. Counted in memory until `with_store` says otherwise.
    pub fn new(scope: &'static str, max_failures: u32, window: Duration, lockout: Duration) -> Self {
        Self {
            limit: Limit {
                scope,
                max: max_failures.max(1),
                window,
                lockout,
            },
            clock: Clock::default(),
            store: Store::Memory,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The same throttle, timed by `clock` (the instance's).
    pub fn with_clock(mut self, clock: &Clock) -> Self {
        self.clock = clock.clone();
        self
    }

    /// The same throttle, counting in `store`.
    pub fn with_store(mut self, store: &Store) -> Self {
        self.store = store.clone();
        self
    }

    /// The counting window (what pruning keeps).
    pub fn window(&self) -> Duration {
        self.limit.window
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures<Instant>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn memory_wait(&self, key: &str, now: Instant) -> Option<Duration> {
        self.memory().get(key).and_then(|f| f.wait(now))
    }

    fn memory_fail(&self, key: &str, now: Instant) {
        let mut map = self.memory();
        if map.len() >= MAX_ENTRIES {
            let window = self.limit.window;
            map.retain(|_, f| f.live(now, window));
        }
        map.entry(key.to_owned())
            .or_insert_with(|| Failures::new(now))
            .fail(now, &self.limit);
    }

    fn memory_settle(&self, key: &str, how: Settle) {
        let mut map = self.memory();
        match how {
            Settle::Clear => {
                map.remove(key);
            }
            Settle::Refund => {
                if let Some(f) = map.get_mut(key) {
                    f.refund(&self.limit);
                }
            }
        }
    }

    /// `Some(wait)` while `key` is locked out.
    pub async fn check(&self, key: &str) -> anyhow::Result<Option<Duration>> {
        check_all(&[(self, key.to_owned())]).await
    }

    pub async fn fail(&self, key: &str) -> anyhow::Result<()> {
        fail_all(&[(self, key.to_owned())]).await
    }

    /// Forgets the failures of `key`.
    pub async fn succeed(&self, key: &str) -> anyhow::Result<()> {
        settle_all(&[(self, key.to_owned(), Settle::Clear)]).await
    }
}

/// The store of a set of throttles (they are built with one).
fn store_of<'a>(throttles: impl IntoIterator<Item = &'a LoginThrottle>) -> (Store, Clock) {
    let first = throttles.into_iter().next().expect("at least one throttle");
    (first.store.clone(), first.clock.clone())
}

fn in_database(items: &[(&LoginThrottle, String)]) -> Vec<(Limit, String)> {
    items.iter().map(|(t, k)| (t.limit, k.clone())).collect()
}

/// The longest wait of `items` that are locked out.
async fn check_all(items: &[(&LoginThrottle, String)]) -> anyhow::Result<Option<Duration>> {
    match store_of(items.iter().map(|(t, _)| *t)) {
        (Store::Memory, clock) => {
            let now = clock.instant();
            Ok(items.iter().filter_map(|(t, k)| t.memory_wait(k, now)).max())
        }
        (Store::Database(pool), clock) => super::counters::check(&pool, in_database(items), clock.now()).await,
    }
}

async fn fail_all(items: &[(&LoginThrottle, String)]) -> anyhow::Result<()> {
    match store_of(items.iter().map(|(t, _)| *t)) {
        (Store::Memory, clock) => {
            let now = clock.instant();
            items.iter().for_each(|(t, k)| t.memory_fail(k, now));
            Ok(())
        }
        (Store::Database(pool), clock) => super::counters::fail(&pool, in_database(items), clock.now()).await,
    }
}

/// `check_all`, then (when nothing is locked) `fail_all`, at once: in one
/// transaction on the database, whose rows stay locked in between.
async fn charge_all(items: &[(&LoginThrottle, String)]) -> anyhow::Result<Option<Duration>> {
    match store_of(items.iter().map(|(t, _)| *t)) {
        (Store::Memory, clock) => {
            let now = clock.instant();
            if let Some(wait) = items.iter().filter_map(|(t, k)| t.memory_wait(k, now)).max() {
                return Ok(Some(wait));
            }
            items.iter().for_each(|(t, k)| t.memory_fail(k, now));
            Ok(None)
        }
        (Store::Database(pool), clock) => super::counters::charge(&pool, in_database(items), clock.now()).await,
    }
}

async fn settle_all(items: &[(&LoginThrottle, String, Settle)]) -> anyhow::Result<()> {
    match store_of(items.iter().map(|(t, _, _)| *t)) {
        (Store::Memory, _) => {
            items.iter().for_each(|(t, k, how)| t.memory_settle(k, *how));
            Ok(())
        }
        (Store::Database(pool), _) => {
            let items = items.iter().map(|(t, k, how)| (t.limit, k.clone(), *how)).collect();
            super::counters::settle(&pool, items).await
        }
    }
}

/// One login attempt, as the limits see it.
pub struct Attempt {
    /// The username as typed, folded to lower case and cut to 64 chars.
    username: String,
    /// The client's address.
    address: String,
    /// The digest of the device id from a valid device cookie issued to
    /// this username (see `web::device`): a browser that has logged into
    /// this account. Only its digest is kept, as a count's key.
    device: Option<String>,
}

impl Attempt {
    pub fn new(username: &str, address: &str, device: Option<String>) -> Self {
        Self {
            username: username.trim().to_ascii_lowercase().chars().take(64).collect(),
            address: crate::net::limit_key(address),
            device: device.as_deref().map(digest),
        }
    }
}

/// The login limits, after OWASP's guidance on lock-outs:
/// - per (username, address): the tight limit, for one attacker at one
///   address guessing one password;
/// - per address: a looser one, for one address spraying many usernames;
///   a successful login does not reset it (else an attacker resets it by
///   logging into an account of their own now and then);
/// - per username: for guesses from many addresses at one account;
/// - a browser holding a device cookie for the username is judged by its
///   own per-(username, device) limit alone: whoever attacks the account or
///   the address, its owner's usual browser still gets in.
pub struct LoginLimits {
    by_pair: LoginThrottle,
    by_address: LoginThrottle,
    by_username: LoginThrottle,
    by_device: LoginThrottle,
}

impl LoginLimits {
    /// `max_failures` for a pair or a device; an account takes twice as
    /// many, an address four times as many.
    pub fn new(max_failures: u32, window: Duration, lockout: Duration) -> Self {
        let limit =
            |scope, factor: u32| LoginThrottle::new(scope, max_failures.saturating_mul(factor), window, lockout);
        Self {
            by_pair: limit("login:pair", 1),
            by_address: limit("login:address", 4),
            by_username: limit("login:username", 2),
            by_device: limit("login:device", 1),
        }
    }

    fn each(self, f: impl Fn(LoginThrottle) -> LoginThrottle) -> Self {
        Self {
            by_pair: f(self.by_pair),
            by_address: f(self.by_address),
            by_username: f(self.by_username),
            by_device: f(self.by_device),
        }
    }

    /// The same limits, timed by `clock` (the instance's).
    pub fn with_clock(self, clock: &Clock) -> Self {
        self.each(|t| t.with_clock(clock))
    }

    /// The same limits, counting in `store`.
    pub fn with_store(self, store: &Store) -> Self {
        self.each(|t| t.with_store(store))
    }

    /// The counting window.
    pub fn window(&self) -> Duration {
        self.by_pair.window()
    }

    fn keys(&self, a: &Attempt) -> Vec<(&LoginThrottle, String)> {
        match &a.device {
            Some(device) => vec![(&self.by_device, format!("{}\n{device}", a.username))],
            None => vec![
                (&self.by_pair, format!("{}\n{}", a.username, a.address)),
                (&self.by_address, a.address.clone()),
                (&self.by_username, a.username.clone()),
            ],
        }
    }

    /// `Some(wait)` while any limit that applies to this attempt is reached.
    pub async fn check(&self, a: &Attempt) -> anyhow::Result<Option<Duration>> {
        check_all(&self.keys(a)).await
    }

    pub async fn failed(&self, a: &Attempt) -> anyhow::Result<()> {
        fail_all(&self.keys(a)).await
    }

    /// `check`, then counts the attempt as a failure before any password
    /// is hashed: requests racing in together cannot all pass the check
    /// while the first ones are still hashing. `succeeded` takes it back.
    /// `Some(wait)` (and nothing counted) while a limit is reached.
    pub async fn charge(&self, a: &Attempt) -> anyhow::Result<Option<Duration>> {
        charge_all(&self.keys(a)).await
    }

    /// Clears what concerns this account only; the address's count only
    /// gets back the failure charged in advance for this attempt.
    pub async fn succeeded(&self, a: &Attempt) -> anyhow::Result<()> {
        let mut items = vec![
            (&self.by_pair, format!("{}\n{}", a.username, a.address), Settle::Clear),
            (&self.by_username, a.username.clone(), Settle::Clear),
        ];
        match &a.device {
            None => items.push((&self.by_address, a.address.clone(), Settle::Refund)),
            Some(device) => items.push((&self.by_device, format!("{}\n{device}", a.username), Settle::Clear)),
        }
        settle_all(&items).await
    }
}

/// At most `max` events per key within a window: sliding in memory; in the
/// database, a window that starts with the first event counted and ends
/// `window` later (so up to twice `max` may pass within one window's span
/// that straddles two of them).
pub struct RateLimit {
    limit: Limit,
    clock: Clock,
    store: Store,
    entries: Mutex<HashMap<String, Vec<Instant>>>,
}

impl RateLimit {
    pub fn new(scope: &'static str, max: u32, window: Duration) -> Self {
        Self {
            limit: Limit {
                scope,
                max: max.max(1),
                window,
                lockout: Duration::ZERO,
            },
            clock: Clock::default(),
            store: Store::Memory,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The same limit, timed by `clock` (the instance's).
    pub fn with_clock(mut self, clock: &Clock) -> Self {
        self.clock = clock.clone();
        self
    }

    /// The same limit, counting in `store`.
    pub fn with_store(mut self, store: &Store) -> Self {
        self.store = store.clone();
        self
    }

    pub fn window(&self) -> Duration {
        self.limit.window
    }

    /// Records an event for `key`; false when the limit is already reached.
    pub async fn allow(&self, key: &str) -> anyhow::Result<bool> {
        let Store::Database(pool) = &self.store else {
            return Ok(self.allow_in_memory(key));
        };
        super::counters::take(pool, self.limit, key.to_owned(), self.clock.now()).await
    }

    fn allow_in_memory(&self, key: &str) -> bool {
        let now = self.clock.instant();
        let window = self.limit.window;
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, v| v.last().is_some_and(|t| now.duration_since(*t) < window));
        }
        let hits = map.entry(key.to_owned()).or_default();
        hits.retain(|t| now.duration_since(*t) < window);
        if hits.len() >= self.limit.max as usize {
            return false;
        }
        hits.push(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn a_lockout_starts_after_the_limit_and_a_success_clears_it() {
        let t = LoginThrottle::new("t", 3, Duration::from_secs(900), Duration::from_secs(30));
        for _ in 0..2 {
            t.fail("u:alice").await.unwrap();
        }
        assert!(t.check("u:alice").await.unwrap().is_none());
        t.fail("u:alice").await.unwrap();
        let wait = t.check("u:alice").await.unwrap().unwrap();
        assert!(wait <= Duration::from_secs(30) && wait > Duration::from_secs(25));
        t.fail("u:alice").await.unwrap();
        assert!(
            t.check("u:alice").await.unwrap().unwrap() > Duration::from_secs(30),
            "grows"
        );
        assert!(t.check("u:bob").await.unwrap().is_none());
        t.succeed("u:alice").await.unwrap();
        assert!(t.check("u:alice").await.unwrap().is_none());
    }

    fn limits() -> LoginLimits {
        LoginLimits::new(3, Duration::from_secs(900), Duration::from_secs(30))
    }

    async fn locked(l: &LoginLimits, a: &Attempt) -> bool {
        l.check(a).await.unwrap().is_some()
    }

    #[actix_web::test]
    async fn a_success_does_not_clear_the_address_count() {
        let l = limits();
        // 11 failures on other accounts, a success on one's own, repeated.
        for round in 0..3 {
            for victim in 0..4 {
                let a = Attempt::new(&format!("victim{round}{victim}"), "10.0.0.1", None);
                if !locked(&l, &a).await {
                    l.failed(&a).await.unwrap();
                }
            }
            let own = Attempt::new("attacker", "10.0.0.1", None);
            if l.charge(&own).await.unwrap().is_none() {
                l.succeeded(&own).await.unwrap();
            }
        }
        assert!(locked(&l, &Attempt::new("someone", "10.0.0.1", None)).await);
        assert!(!locked(&l, &Attempt::new("someone", "10.0.0.2", None)).await);
    }

    #[actix_web::test]
    async fn a_known_device_is_judged_on_its_own() {
        let l = limits();
        for addr in ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"] {
            l.failed(&Attempt::new("alice", addr, None)).await.unwrap();
        }
        assert!(
            locked(&l, &Attempt::new("alice", "10.0.0.9", None)).await,
            "account limit"
        );
        let dev = |d: &str| Attempt::new("alice", "10.0.0.1", Some(d.into()));
        assert!(!locked(&l, &dev("dev1")).await);
        for _ in 0..3 {
            l.failed(&dev("dev1")).await.unwrap();
        }
        assert!(locked(&l, &dev("dev1")).await);
        assert!(!locked(&l, &dev("dev2")).await);
    }

    #[actix_web::test]
    async fn rate_limits_count_per_key() {
        let r = RateLimit::new("r", 2, Duration::from_secs(60));
        assert!(r.allow("a").await.unwrap());
        assert!(r.allow("a").await.unwrap());
        assert!(!r.allow("a").await.unwrap());
        assert!(r.allow("b").await.unwrap());
    }

    #[test]
    fn a_window_of_a_rate_limit_starts_with_its_first_event() {
        let limit = Limit {
            scope: "r",
            max: 2,
            window: Duration::from_secs(60),
            lockout: Duration::ZERO,
        };
        let t0 = Instant::now();
        let mut f = Failures::new(t0);
        assert!(f.take(t0, &limit));
        assert!(f.take(t0 + Duration::from_secs(30), &limit));
        assert!(!f.take(t0 + Duration::from_secs(59), &limit));
        assert!(f.take(t0 + Duration::from_secs(60), &limit), "a new window");
    }

    #[test]
    fn device_ids_and_addresses_are_kept_as_digests_only_where_secret() {
        let a = Attempt::new("Alice", "10.0.0.1", Some("s3cretdeviceid".into()));
        assert_eq!(a.username, "alice");
        assert_eq!(a.address, "10.0.0.1");
        assert_eq!(a.device.as_deref(), Some(digest("s3cretdeviceid").as_str()));
        assert_eq!(digest("x").len(), 32);
    }
}

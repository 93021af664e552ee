//! The verifier: checks presented keys against the local and shared caches
//! and, for a key not cached, the database; records each accepted use
//! (`last_used`) and flushes those records; follows the change feed so
//! that keys changed elsewhere are forgotten here (docs/architecture.md).

use std::net::IpAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, NaiveDateTime};

use super::format::{self, KeyDigest, ID_LEN};
use super::last_used::LastUsed;
use super::local;
use super::restrictions;
use super::shared::SharedCache;
use super::store;
use super::verified::{Restrictions, VerifiedKey};
use crate::db::{self, Pool};
use crate::metrics::{CacheEvent, Gauges, Metrics, Outcome};

/// The follower's loop: from the feed's position when it starts, read what
/// came after, forget those keys, repeat. Rows are re-read a little behind
/// the position, since on PostgreSQL a transaction that took an earlier
/// number may commit after a later one was read.
fn follow(pool: &Pool, verifier: &std::sync::Weak<Verifier>) {
    use crate::db::revocation::{changes_after, feed_position, FEED_POLL};
    const BEHIND: i64 = 64;
    let mut last: Option<i64> = None;
    let mut seen: std::collections::BTreeSet<i64> = Default::default();
    loop {
        std::thread::sleep(FEED_POLL);
        let Some(verifier) = verifier.upgrade() else { return };
        let Ok(mut conn) = pool.get() else { continue };
        let Some(from) = last else {
            match feed_position(&mut conn) {
                Ok(p) => last = Some(p),
                Err(e) => tracing::warn!(error = %e, "cannot read the change feed"),
            }
            continue;
        };
        match changes_after(&mut conn, from - BEHIND, 1000) {
            Ok(rows) => {
                for (seq, key_id) in rows {
                    if seq <= from - BEHIND || !seen.insert(seq) {
                        continue;
                    }
                    if format::is_key_id(&key_id) {
                        verifier.forget(&key_id);
                    } else {
                        tracing::warn!(seq, "a change-feed row names no key id; forgetting every cached key");
                        verifier.forget_all();
                    }
                    last = Some(last.unwrap_or(0).max(seq));
                }
                let floor = last.unwrap_or(0) - BEHIND;
                seen.retain(|s| *s > floor);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the change feed; will retry"),
        }
    }
}

/// A valid key refused by its own restrictions, as its page shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub at: NaiveDateTime,
    /// `address_not_allowed` or `rate_limited`.
    pub reason: &'static str,
    pub address: Option<IpAddr>,
    /// Refusals of this kind from this address within a second.
    pub count: u64,
}

/// A refusal as one stripe keeps it: the time in microseconds, converted
/// to a date only when a page asks.
#[derive(Clone, Debug)]
struct Noted {
    at: i64,
    reason: &'static str,
    address: Option<IpAddr>,
    count: u64,
}

/// One stripe's refusals, by key id.
type RefusalLog = std::collections::HashMap<KeyId, std::collections::VecDeque<Noted>>;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Malformed, bad checksum, unknown, expired or deleted: callers are
    /// not told which.
    #[error("invalid key")]
    Invalid,
    /// A valid key, used from an address its allowlist does not name.
    #[error("address not allowed")]
    AddressNotAllowed,
    /// A valid key over its rate limit.
    #[error("rate limited")]
    RateLimited(restrictions::Decision),
    #[error("key store unavailable")]
    Unavailable(#[source] anyhow::Error),
}

/// How long and how many verified keys are remembered.
///
/// The TTL bounds how long a change this instance did not hear about (a
/// key deleted through another instance without a revocation listener, an
/// expiry edited in the database by hand) can go unnoticed; deletes on this
/// instance and an expiry date passing take effect at once regardless.
#[derive(Clone, Copy, Debug)]
pub struct CacheSettings {
    pub ttl: std::time::Duration,
    /// Known key ids remembered (each costs a few hundred bytes); up to an
    /// eighth more when ids spread unevenly over the shards (`shared`).
    pub max_known: u64,
    /// Unknown key ids remembered at most, so a flood of made-up keys is
    /// answered from memory without evicting the known ones.
    pub max_unknown: u64,
    /// Database lookups for verification at once. Beyond this, cold keys
    /// wait their turn: a burst of them (a restart, a flood of made-up keys)
    /// cannot take every pooled connection from the pages and the last-used
    /// flush, nor park a blocking thread per request.
    pub max_lookups: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            ttl: std::time::Duration::from_secs(30),
            max_known: 100_000,
            max_unknown: 100_000,
            max_lookups: 4,
        }
    }
}

/// A key id as a fixed-size value: cache lookups never allocate.
type KeyId = [u8; ID_LEN];

/// A successfully verified key, as handed to one request. Cloning it within
/// the thread costs no atomic operation; `shared()` gives a `Send` handle.
#[derive(Clone)]
pub struct Verified(local::LocalKey, Option<restrictions::Decision>);

impl Verified {
    pub fn shared(&self) -> Arc<VerifiedKey> {
        Arc::clone(&self.0)
    }

    /// For a rate-limited key: what its `RateLimit-*` headers say.
    pub fn rate_limit(&self) -> Option<restrictions::Decision> {
        self.1
    }
}

impl std::ops::Deref for Verified {
    type Target = VerifiedKey;
    fn deref(&self) -> &VerifiedKey {
        &self.0
    }
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self.0, f)
    }
}

/// What `Verifier::check` found from memory alone.
pub enum Checked {
    /// Decided: accepted, or refused for good.
    Done(Result<Verified, VerifyError>),
    /// Well-formed with a good checksum but not cached: `Verifier::look_up`.
    Lookup(Lookup),
}

/// A presented key the database must answer for, as `check` parsed and
/// hashed it: the lookup does neither again.
pub struct Lookup {
    id: KeyId,
    /// `{tag}_{id}`.
    prefix: Box<str>,
    digest: KeyDigest,
    started: Instant,
}

impl Lookup {
    /// `{tag}_{id}` of the presented key, for logs.
    pub fn display_prefix(&self) -> &str {
        &self.prefix
    }
}

/// Checks presented keys and records their use.
///
/// A verified key costs a SHA-256 and an in-memory lookup: known key ids are
/// cached with their digest, owner, scopes and expiry, so a cache hit makes
/// no database access and an expired key is refused even from the cache.
/// Unknown ids are cached separately (a flood of well-formed made-up keys
/// cannot evict the real ones, and each made-up key reaches the database at
/// most once per TTL). Malformed keys and bad checksums never get this far.
/// In front of the shared cache sits a per-thread one (`local`), so a hot
/// key is answered without writing to memory other workers use.
pub struct Verifier {
    /// Tells this verifier's entries apart in the per-thread caches.
    id: u64,
    pool: Pool,
    last_used: Arc<LastUsed>,
    ttl: std::time::Duration,
    known: SharedCache<Arc<VerifiedKey>>,
    unknown: SharedCache<()>,
    /// Bumped by every invalidation. A lookup that read the database before
    /// an invalidation but fills the cache after it would otherwise bring a
    /// deleted key back: it compares this before and after, and drops what
    /// it cached when they differ. The per-thread caches trust an entry only
    /// while this has not moved since the entry was filled.
    invalidations: AtomicU64,
    lookups: tokio::sync::Semaphore,
    metrics: Metrics,
    /// The wall clock when `None`; tests set one to see a cached key expire.
    clock: Option<fn() -> NaiveDateTime>,
    /// Added to the clock: tests and drills move time forward (an expiry,
    /// a grace period, a rate limit refilling) without waiting.
    skew_micros: std::sync::atomic::AtomicI64,
    /// The last refusals of restricted keys, by id, on this instance, kept
    /// per thread stripe (as the metrics are): under a flood of refused
    /// calls, each worker takes its own stripe's lock. At most 10 entries
    /// for each of 10,000 keys per stripe (a stripe is emptied beyond).
    refusals: [std::sync::Mutex<RefusalLog>; crate::metrics::STRIPES],
    /// Rate limiters of limited keys, by id: kept when a cached key is
    /// reloaded, so its count carries on.
    limiters: std::sync::Mutex<std::collections::HashMap<KeyId, Arc<restrictions::Limiter>>>,
}

impl Verifier {
    pub fn new(pool: Pool, last_used: Arc<LastUsed>) -> Self {
        Self::with_cache(pool, last_used, CacheSettings::default())
    }

    pub fn with_cache(pool: Pool, last_used: Arc<LastUsed>, cache: CacheSettings) -> Self {
        static IDS: AtomicU64 = AtomicU64::new(0);
        Self {
            id: IDS.fetch_add(1, SeqCst),
            pool,
            last_used,
            ttl: cache.ttl,
            known: SharedCache::new(cache.max_known, cache.ttl),
            unknown: SharedCache::new(cache.max_unknown, cache.ttl),
            invalidations: AtomicU64::new(0),
            lookups: tokio::sync::Semaphore::new(cache.max_lookups.max(1)),
            metrics: Metrics::default(),
            clock: None,
            skew_micros: std::sync::atomic::AtomicI64::new(0),
            refusals: std::array::from_fn(|_| Default::default()),
            limiters: Default::default(),
        }
    }

    /// The time keys are judged by: the wall clock, plus any skew.
    pub fn now(&self) -> NaiveDateTime {
        let micros = self.now_micros();
        chrono::DateTime::from_timestamp_micros(micros).map_or_else(crate::time::now, |t| t.naive_utc())
    }

    /// `now` in microseconds since 1970 (UTC): what every accepted call
    /// compares and records, with no calendar arithmetic.
    fn now_micros(&self) -> i64 {
        let clock = match self.clock {
            Some(clock) => clock().and_utc().timestamp_micros(),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        };
        clock.saturating_add(self.skew_micros.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Moves this verifier's clock forward (or back): for tests and drills
    /// that must see a grace period end or a rate limit refill.
    pub fn skew_clock(&self, by: Duration) {
        let micros = by.num_microseconds().unwrap_or(0);
        self.skew_micros.fetch_add(micros, std::sync::atomic::Ordering::Relaxed);
    }

    /// Notes a refusal of a valid key by its restrictions, at `at`
    /// (microseconds). Refusals of the same kind from the same address
    /// within a second are counted in one entry; the last 10 entries per
    /// key and stripe are kept.
    fn note_refusal(&self, key_id: &str, reason: &'static str, client: Option<IpAddr>, at: i64) {
        let Ok(id) = KeyId::try_from(key_id.as_bytes()) else {
            return;
        };
        let stripe = &self.refusals[crate::metrics::stripe_index()];
        let mut map = stripe.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= 10_000 && !map.contains_key(&id) {
            map.clear();
        }
        let list = map.entry(id).or_default();
        if let Some(last) = list.back_mut() {
            if last.reason == reason && last.address == client && at - last.at < 1_000_000 {
                last.count += 1;
                return;
            }
        }
        if list.len() == 10 {
            list.pop_front();
        }
        list.push_back(Noted {
            at,
            reason,
            address: client,
            count: 1,
        });
    }

    /// The key's last refusals on this instance, newest first: the
    /// stripes' entries merged, those of one kind from one address within
    /// a second counted together.
    pub fn recent_refusals(&self, key_id: &str) -> Vec<Refusal> {
        let Ok(id) = KeyId::try_from(key_id.as_bytes()) else {
            return Vec::new();
        };
        let mut all: Vec<Noted> = Vec::new();
        for stripe in &self.refusals {
            let map = stripe.lock().unwrap_or_else(|p| p.into_inner());
            all.extend(map.get(&id).into_iter().flatten().cloned());
        }
        all.sort_by_key(|n| n.at);
        let mut merged: Vec<Noted> = Vec::with_capacity(all.len());
        for n in all {
            match merged.last_mut() {
                Some(last) if last.reason == n.reason && last.address == n.address && n.at - last.at < 1_000_000 => {
                    last.count += n.count;
                }
                _ => merged.push(n),
            }
        }
        merged
            .iter()
            .rev()
            .take(10)
            .map(|n| Refusal {
                at: chrono::DateTime::from_timestamp_micros(n.at).map_or_else(crate::time::now, |t| t.naive_utc()),
                reason: n.reason,
                address: n.address,
                count: n.count,
            })
            .collect()
    }

    /// The limiter of key `id` at `per_minute`, kept from earlier loads.
    fn limiter(&self, id: KeyId, per_minute: u32) -> Arc<restrictions::Limiter> {
        let mut map = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = map.get(&id).filter(|l| l.per_minute() == per_minute) {
            return l.clone();
        }
        if map.len() >= 100_000 {
            map.clear();
        }
        let l = Arc::new(restrictions::Limiter::new(per_minute));
        map.insert(id, l.clone());
        l
    }

    pub fn last_used(&self) -> &Arc<LastUsed> {
        &self.last_used
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// What the verifier holds now, for `/metrics` (rendered by `metrics`).
    pub fn gauges(&self) -> Gauges {
        Gauges {
            last_used_pending: self.last_used.pending_count() as u64,
            last_used_written: self.last_used.written_count(),
            cached_known: self.known.len(),
            cached_unknown: self.unknown.len(),
        }
    }

    /// Writes pending last-used times now (also what shutdown calls).
    pub async fn flush_last_used(&self) -> anyhow::Result<usize> {
        self.last_used.flush(&self.pool).await
    }

    /// Flushes pending last-used times every `every` on the current actix
    /// runtime, for services that embed the guard.
    ///
    /// A flush that wrote any key says so in one line at DEBUG, target
    /// `keyward::last_used`, with how many keys (never which): logged once
    /// every transaction of the flush has committed, so whoever reads the
    /// database after seeing the line sees those uses (tests wait on it).
    pub fn spawn_flusher(self: &Arc<Self>, every: std::time::Duration) {
        let verifier = self.clone();
        actix_web::rt::spawn(async move {
            let mut tick = actix_web::rt::time::interval(every);
            // A flush longer than the interval is not followed by a burst of
            // the ticks it missed.
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                // At each tick, or sooner when many keys are pending
                // (`last_used::PRESSURE`).
                tokio::select! {
                    _ = tick.tick() => {}
                    () = verifier.last_used.pressed() => {}
                }
                // Counted rather than returned: a flush that fails part-way
                // has committed its first chunks all the same.
                let before = verifier.last_used.written_count();
                let flushed = verifier.flush_last_used().await;
                let keys = verifier.last_used.written_count().saturating_sub(before);
                if keys > 0 {
                    tracing::debug!(target: "keyward::last_used", keys, "last-used flush written");
                }
                if let Err(e) = flushed {
                    tracing::warn!(error = ?e, "last-used flush failed; will retry");
                }
            }
        });
    }

    /// Follows the change feed (`db::revocation`) on a thread of its own,
    /// forgetting each changed key within `FEED_POLL`: what lets every
    /// process that checks keys (instances, services embedding the guard,
    /// and changes made with the CLI) act as one. Stops when the verifier
    /// is dropped. Call once, after building the verifier.
    pub fn follow_changes(self: &Arc<Self>) -> std::io::Result<()> {
        let weak = Arc::downgrade(self);
        let pool = self.pool.clone();
        std::thread::Builder::new()
            .name("keyward-feed".into())
            .spawn(move || follow(&pool, &weak))
            .map(|_| ())
    }

    /// Verifies a presented key and records its use. A key with an
    /// address allowlist is refused here: use `verify_from`.
    pub async fn verify(&self, presented: &str) -> Result<Verified, VerifyError> {
        self.verify_from(presented, None).await
    }

    /// Verifies a key presented from `client` (the address its allowlist
    /// and the last-used address are about), and records its use.
    pub async fn verify_from(&self, presented: &str, client: Option<IpAddr>) -> Result<Verified, VerifyError> {
        match self.check(presented, || client) {
            Checked::Done(result) => result,
            Checked::Lookup(lookup) => self.look_up(&lookup, client).await,
        }
    }

    /// Decides from memory alone (shape, checksum, the caches) when it can,
    /// with no future to allocate: the guard's path. The client's address
    /// is worked out only for a key that proves valid, so a refusal costs
    /// no header lookups. A key that must be read from the database comes
    /// back as a `Lookup`, parsed and hashed once: pass it to `look_up`.
    pub fn check(&self, presented: &str, client: impl FnOnce() -> Option<IpAddr>) -> Checked {
        self.check_bytes(presented.as_bytes(), client)
    }

    /// `check` of the bytes a header carried, not yet known to be text:
    /// the guard's path, where a refused key never costs a UTF-8 pass.
    pub fn check_bytes(&self, presented: &[u8], client: impl FnOnce() -> Option<IpAddr>) -> Checked {
        // Shape and checksum first: garbage and typos cost a pass over the
        // bytes and a CRC, and never read the clock, a cache or the
        // database. They are counted, but not timed.
        let shape = match format::parse_checked_shape(presented) {
            Ok(shape) => shape,
            Err(_) => {
                self.metrics.unverified(Outcome::Invalid);
                return Checked::Done(Err(VerifyError::Invalid));
            }
        };
        let started = Instant::now();
        match self.check_in_memory(shape, client, started) {
            Ok(result) => {
                self.count(&result, started);
                Checked::Done(result)
            }
            Err(lookup) => Checked::Lookup(lookup),
        }
    }

    /// Finishes a `check` that needed the database.
    pub async fn look_up(&self, lookup: &Lookup, client: Option<IpAddr>) -> Result<Verified, VerifyError> {
        let result = self.check_in_database(lookup, client).await;
        self.count(&result, lookup.started);
        result
    }

    /// Records that a verified key was checked for `scope` and had it.
    pub fn record_scope(&self, key: &VerifiedKey, scope: &str) {
        self.last_used
            .record_scope_micros(key.key_id(), scope, self.now_micros());
    }

    fn count(&self, result: &Result<Verified, VerifyError>, started: Instant) {
        let outcome = match result {
            Ok(_) => Outcome::Ok,
            Err(VerifyError::Invalid) => Outcome::Invalid,
            Err(VerifyError::AddressNotAllowed) => Outcome::AddressNotAllowed,
            Err(VerifyError::RateLimited(_)) => Outcome::RateLimited,
            Err(VerifyError::Unavailable(_)) => Outcome::Error,
        };
        self.metrics.verification(outcome, started.elapsed());
    }

    /// Decides from memory, or hands back what the database must answer,
    /// for a key whose shape and checksum are right.
    fn check_in_memory(
        &self,
        shape: format::KeyShape<'_>,
        client: impl FnOnce() -> Option<IpAddr>,
        started: Instant,
    ) -> Result<Result<Verified, VerifyError>, Lookup> {
        let id = shape.id_bytes();
        // Read before any cache: see `invalidations`.
        let epoch = self.invalidations.load(SeqCst);
        let local = local::get(self.id, id, epoch, started);
        if let Some(local::Entry::Unknown) = local {
            // Refused before any SHA-256.
            self.metrics.cache(CacheEvent::NegativeHit);
            return Ok(Err(VerifyError::Invalid));
        }
        let parts = shape.into_parts();
        if let Some(local::Entry::Known(key)) = local {
            self.metrics.cache(CacheEvent::PositiveHit);
            return Ok(self.accept(parts.display_prefix, &parts.digest, key, client));
        }
        if let Some((at, known)) = self.known.get(&id, started) {
            self.metrics.cache(CacheEvent::PositiveHit);
            let key = self.keep_local(id, epoch, at, known);
            return Ok(self.accept(parts.display_prefix, &parts.digest, key, client));
        }
        if let Some((since, ())) = self.unknown.get(&id, started) {
            self.metrics.cache(CacheEvent::NegativeHit);
            local::put(self.id, id, epoch, since + self.ttl, local::Entry::Unknown);
            return Ok(Err(VerifyError::Invalid));
        }
        Err(Lookup {
            id,
            prefix: parts.display_prefix.into(),
            digest: parts.digest,
            started,
        })
    }

    async fn check_in_database(&self, lookup: &Lookup, client: Option<IpAddr>) -> Result<Verified, VerifyError> {
        // Read before the database: see `invalidations`.
        let epoch = self.invalidations.load(SeqCst);
        match self.lookup(lookup.id, epoch).await? {
            Some((at, known)) => {
                let key = self.keep_local(lookup.id, epoch, at, known);
                self.accept(&lookup.prefix, &lookup.digest, key, || client)
            }
            None => Err(VerifyError::Invalid),
        }
    }

    /// Puts a shared entry in this thread's cache, valid while the
    /// invalidation count stays at `epoch`.
    fn keep_local(&self, id: KeyId, epoch: u64, cached_at: Instant, known: Arc<VerifiedKey>) -> local::LocalKey {
        let key = Rc::new(known);
        let expires = cached_at + self.ttl;
        local::put(self.id, id, epoch, expires, local::Entry::Known(key.clone()));
        key
    }

    /// The checks a cached key must pass on every call, and its use.
    fn accept(
        &self,
        display_prefix: &str,
        digest: &KeyDigest,
        key: local::LocalKey,
        client: impl FnOnce() -> Option<IpAddr>,
    ) -> Result<Verified, VerifyError> {
        let now = self.now_micros();
        let k = &**key;
        if !digest.matches(k.digest.as_bytes()) || k.prefix() != display_prefix || now >= k.expires {
            return Err(VerifyError::Invalid);
        }
        let client = client();
        let mut decision = None;
        if let Some(r) = k.restrictions() {
            if !r.allowed_ips.is_empty() && !client.is_some_and(|ip| r.allowed_ips.allows(ip)) {
                self.note_refusal(k.key_id(), "address_not_allowed", client, now);
                return Err(VerifyError::AddressNotAllowed);
            }
            if let Some(limiter) = &r.limiter {
                let d = limiter.check(now);
                if !d.allowed {
                    self.note_refusal(k.key_id(), "rate_limited", client, now);
                    return Err(VerifyError::RateLimited(d));
                }
                decision = Some(d);
            }
        }
        self.last_used.record_micros(k.key_id(), now, client);
        Ok(Verified(key, decision))
    }

    /// Reads a key id from the database and caches the answer, known or not.
    async fn lookup(&self, id: KeyId, before: u64) -> Result<Option<(Instant, Arc<VerifiedKey>)>, VerifyError> {
        let _turn = self
            .lookups
            .acquire()
            .await
            .map_err(|e| VerifyError::Unavailable(e.into()))?;
        // Whoever held the turn before may have looked up this very id.
        let now = Instant::now();
        if let Some(known) = self.known.get(&id, now) {
            self.metrics.cache(CacheEvent::PositiveHit);
            return Ok(Some(known));
        }
        if self.unknown.get(&id, now).is_some() {
            self.metrics.cache(CacheEvent::NegativeHit);
            return Ok(None);
        }
        self.metrics.db_lookup();
        // Key ids are ASCII base62 (`format::parse_checked_shape` checked).
        let wanted = String::from_utf8_lossy(&id).into_owned();
        let found = db::run(&self.pool, move |conn| Ok(store::find_for_verify(conn, &wanted)?))
            .await
            .map_err(VerifyError::Unavailable)?;
        // A stored digest of any other length matches no key: the id is
        // then as good as unknown, and cached as such.
        let found = found.and_then(
            |(info, digest, username)| match <[u8; 32]>::try_from(digest.as_slice()) {
                Ok(d) => Some((info, KeyDigest(d), username)),
                Err(_) => {
                    tracing::error!(key = %info.prefix, "stored key digest is not 32 bytes; the key is refused");
                    None
                }
            },
        );
        let cached_at = Instant::now();
        let Some((info, digest, username)) = found else {
            self.metrics.cache(CacheEvent::NegativeMiss);
            self.unknown.insert(id, cached_at, ());
            if self.invalidations.load(SeqCst) != before {
                self.unknown.remove(&id);
            }
            return Ok(None);
        };
        self.metrics.cache(CacheEvent::PositiveMiss);
        // Built here, on the worker, in one allocation: the row's own
        // strings were allocated on a blocking thread and go back there.
        let restrictions = Restrictions {
            allowed_ips: restrictions::AllowedIps::parse(&info.allowed_ips).unwrap_or_else(|_| {
                // Written by this code only; if damaged, allow nowhere.
                tracing::error!(key = %info.prefix, "stored allowlist is unreadable; the key is refused everywhere");
                restrictions::AllowedIps::parse("0.0.0.0/32").unwrap_or_default()
            }),
            limiter: info
                .rate_limit_per_minute
                .and_then(|n| u32::try_from(n).ok())
                .map(|n| self.limiter(id, n)),
        };
        let key = VerifiedKey::new(
            &info.id,
            info.user_id,
            &username,
            &info.name,
            &info.prefix,
            &info.scopes.split_whitespace().collect::<Vec<_>>(),
            info.ends_at(),
            digest,
        )
        .with_restrictions(restrictions);
        let known = Arc::new(key);
        self.known.insert(id, cached_at, known.clone());
        if self.invalidations.load(SeqCst) != before {
            self.known.remove(&id);
        }
        Ok(Some((cached_at, known)))
    }

    /// Drops anything this instance remembers about a key. Called on delete
    /// before the delete request returns, and by the revocation listener.
    ///
    /// Uses recorded but not yet written are kept: an edited or rotated key
    /// was still used. `forget_deleted` drops them too.
    pub fn forget(&self, key_id: &str) {
        self.invalidations.fetch_add(1, SeqCst);
        if let Ok(id) = KeyId::try_from(key_id.as_bytes()) {
            self.known.remove(&id);
            self.unknown.remove(&id);
        }
    }

    /// `forget`, for a key deleted here: its pending uses go too.
    pub fn forget_deleted(&self, key_id: &str) {
        self.forget(key_id);
        self.last_used.forget(key_id);
    }

    /// A key was created: its id may sit in the cache of unknown ids (ids
    /// are random, so only if someone guessed it, but then it must work).
    pub fn key_created(&self, key_id: &str) {
        self.invalidations.fetch_add(1, SeqCst);
        if let Ok(id) = KeyId::try_from(key_id.as_bytes()) {
            self.unknown.remove(&id);
        }
    }

    /// Drops everything this instance remembers about any key: called when
    /// revocations from other instances may have been missed. Pending
    /// last-used times stay: they are uses that did happen.
    pub fn forget_all(&self) {
        self.invalidations.fetch_add(1, SeqCst);
        self.known.clear();
        self.unknown.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::schema::users;
    use diesel::prelude::*;
    use format::{GeneratedKey, KeyTag};

    /// A fresh database with one user; the pool, the user id and the temp dir.
    fn database() -> (Pool, i64, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = db::DatabaseUrl::Sqlite(dir.path().join("t.db").to_string_lossy().into_owned());
        let pool = db::migrate_and_connect(&url).unwrap();
        let mut conn = pool.get().unwrap();
        diesel::insert_into(users::table)
            .values((
                users::username.eq("alice"),
                users::email.eq("alice@example.com"),
                users::password_hash.eq("x"),
                users::created_at.eq(crate::time::now()),
            ))
            .execute(&mut *conn)
            .unwrap();
        let user_id = users::table.select(users::id).first(&mut *conn).unwrap();
        (pool, user_id, dir)
    }

    fn store_key(pool: &Pool, user_id: i64, g: &GeneratedKey, expires_at: Option<NaiveDateTime>) {
        store::insert_generated(&mut pool.get().unwrap(), g, user_id, &g.id, "read", expires_at).unwrap();
    }

    fn kw() -> KeyTag {
        KeyTag::parse("kw").unwrap()
    }

    fn verify(v: &Verifier, key: &GeneratedKey) -> Result<Verified, VerifyError> {
        actix_web::rt::System::new().block_on(v.verify(key.key.expose()))
    }

    /// A flush writes every pending key, in several transactions of
    /// `FLUSH_CHUNK` keys each, and leaves nothing pending.
    #[test]
    fn a_flush_of_more_keys_than_one_transaction_takes_writes_them_all() {
        let (pool, lu, _dir) = many_keys_used(2_500);
        let written = actix_web::rt::System::new().block_on(lu.flush(&pool)).unwrap();
        assert_eq!(written, 2_500);
        assert_eq!(lu.pending_count(), 0);
        assert_eq!(keys_with_a_last_use(&pool), 2_500);
    }

    /// A database with `n` keys, each used once and not yet written.
    fn many_keys_used(n: usize) -> (Pool, Arc<LastUsed>, tempfile::TempDir) {
        let (pool, user_id, dir) = database();
        let keys: Vec<GeneratedKey> = (0..n).map(|_| format::generate(&kw())).collect();
        pool.get()
            .unwrap()
            .transaction::<_, diesel::result::Error, _>(|c| {
                for k in &keys {
                    store::insert_generated(c, k, user_id, &k.id, "read", None)?;
                }
                Ok(())
            })
            .unwrap();
        let lu = Arc::new(LastUsed::default());
        let at = crate::time::now();
        for k in &keys {
            lu.record(&k.id, at);
        }
        (pool, lu, dir)
    }

    fn keys_with_a_last_use(pool: &Pool) -> i64 {
        use crate::db::schema::api_keys;
        api_keys::table
            .filter(api_keys::last_used_at.is_not_null())
            .count()
            .get_result(&mut *pool.get().unwrap())
            .unwrap()
    }

    /// A flush that starts while another is writing (the shutdown flush
    /// beside the background one) returns only once what was recorded
    /// before it is written: it waits for the batch it cannot see.
    #[test]
    fn a_flush_beside_one_in_progress_returns_once_everything_is_written() {
        let (pool, lu, _dir) = many_keys_used(2_500);
        let used = actix_web::rt::System::new().block_on(async {
            let first = {
                let (lu, pool) = (lu.clone(), pool.clone());
                actix_web::rt::spawn(async move { lu.flush(&pool).await.unwrap() })
            };
            // The first flush takes every pending use and starts writing.
            tokio::task::yield_now().await;
            assert_eq!(lu.pending_count(), 0, "the first flush took the batch");
            lu.flush(&pool).await.unwrap();
            let used = keys_with_a_last_use(&pool);
            assert_eq!(first.await.unwrap(), 2_500);
            used
        });
        assert_eq!(used, 2_500, "the second flush returned before the first had written");
    }

    #[test]
    fn a_second_verification_is_answered_from_the_cache() {
        let (pool, user_id, _dir) = database();
        let key = format::generate(&kw());
        store_key(&pool, user_id, &key, None);
        let v = Verifier::new(pool, Arc::new(LastUsed::default()));

        assert_eq!(verify(&v, &key).unwrap().username(), "alice");
        assert!(verify(&v, &key).unwrap().scopes().eq(["read"]));

        let m = v.metrics().snapshot();
        assert_eq!((m.db_lookups, m.positive_misses, m.positive_hits, m.ok), (1, 1, 1, 2));
        assert!(v.last_used().pending(&key.id).is_some());
    }

    #[test]
    fn check_answers_from_memory_or_hands_back_a_lookup() {
        let (pool, user_id, _dir) = database();
        let key = format::generate(&kw());
        store_key(&pool, user_id, &key, None);
        let v = Verifier::new(pool, Arc::new(LastUsed::default()));
        assert!(
            matches!(v.check(key.key.expose(), || None), Checked::Lookup(_)),
            "cold: needs the database"
        );
        assert!(matches!(
            v.check("kw_garbage", || None),
            Checked::Done(Err(VerifyError::Invalid))
        ));

        verify(&v, &key).unwrap();

        assert!(matches!(v.check(key.key.expose(), || None), Checked::Done(Ok(_))));
        assert_eq!(v.metrics().snapshot().ok, 2);
    }

    #[test]
    fn a_forged_secret_or_checksum_for_a_cached_id_is_refused_without_the_database() {
        let (pool, user_id, _dir) = database();
        let key = format::generate(&kw());
        store_key(&pool, user_id, &key, None);
        let v = Verifier::new(pool, Arc::new(LastUsed::default()));
        verify(&v, &key).unwrap();
        // Another secret with a checksum to match; then the real key with
        // its last checksum digit changed.
        let body = format!("{}_{}", key.display_prefix, format::random_base62(format::SECRET_LEN));
        let forged = format!("{body}{}", String::from_utf8(format::checksum(&body).to_vec()).unwrap());
        let good = key.key.expose();
        let last = if good.ends_with('0') { "1" } else { "0" };
        let bad_check = format!("{}{last}", &good[..good.len() - 1]);
        let system = actix_web::rt::System::new();

        for presented in [&forged, &bad_check] {
            assert!(
                matches!(v.check(presented, || None), Checked::Done(_)),
                "decided from memory"
            );
            assert!(matches!(
                system.block_on(v.verify(presented)),
                Err(VerifyError::Invalid)
            ));
        }

        assert!(verify(&v, &key).is_ok(), "the real key still works");
        assert_eq!(v.metrics().snapshot().db_lookups, 1);
    }

    #[test]
    fn a_key_whose_stored_digest_is_damaged_is_refused_and_remembered_as_unknown() {
        let (pool, user_id, _dir) = database();
        let key = format::generate(&kw());
        store_key(&pool, user_id, &key, None);
        diesel::update(crate::db::schema::api_keys::table)
            .set(crate::db::schema::api_keys::digest.eq(&key.digest.as_bytes()[..31]))
            .execute(&mut pool.get().unwrap())
            .unwrap();
        let v = Verifier::new(pool, Arc::new(LastUsed::default()));

        assert!(matches!(verify(&v, &key), Err(VerifyError::Invalid)));
        assert!(matches!(verify(&v, &key), Err(VerifyError::Invalid)));

        let m = v.metrics().snapshot();
        assert_eq!(
            (m.db_lookups, m.negative_hits),
            (1, 1),
            "looked up once, then refused from memory"
        );
    }

    #[test]
    fn a_cached_key_is_refused_once_its_expiry_passes() {
        thread_local! {
            static NOW: std::cell::Cell<Option<NaiveDateTime>> = const { std::cell::Cell::new(None) };
        }
        fn clock() -> NaiveDateTime {
            NOW.with(|n| n.get()).unwrap_or_else(crate::time::now)
        }
        let (pool, user_id, _dir) = database();
        let key = format::generate(&kw());
        let expires = crate::time::now() + Duration::hours(1);
        store_key(&pool, user_id, &key, Some(expires));
        let mut v = Verifier::new(pool, Arc::new(LastUsed::default()));
        v.clock = Some(clock);
        assert!(verify(&v, &key).is_ok(), "valid before its expiry");

        NOW.with(|n| n.set(Some(expires)));

        assert!(matches!(verify(&v, &key), Err(VerifyError::Invalid)));
        let m = v.metrics().snapshot();
        assert_eq!((m.db_lookups, m.positive_hits), (1, 1), "refused from the cache");
    }

    #[test]
    fn a_forgotten_key_is_refused_once_deleted() {
        let (pool, user_id, _dir) = database();
        let key = format::generate(&kw());
        store_key(&pool, user_id, &key, None);
        let v = Verifier::new(pool.clone(), Arc::new(LastUsed::default()));
        verify(&v, &key).unwrap();

        store::delete_for_user(&mut pool.get().unwrap(), user_id, &key.id).unwrap();
        v.forget_deleted(&key.id);

        assert!(matches!(verify(&v, &key), Err(VerifyError::Invalid)));
        assert!(v.last_used().pending(&key.id).is_none());
    }

    #[test]
    fn an_unknown_key_reaches_the_database_once() {
        let (pool, _, _dir) = database();
        let v = Verifier::new(pool, Arc::new(LastUsed::default()));
        let unknown = format::generate(&kw());

        for _ in 0..3 {
            assert!(matches!(verify(&v, &unknown), Err(VerifyError::Invalid)));
        }

        let m = v.metrics().snapshot();
        assert_eq!(
            (m.db_lookups, m.negative_misses, m.negative_hits, m.invalid),
            (1, 1, 2, 3)
        );
    }

    #[test]
    fn malformed_keys_and_bad_checksums_never_reach_the_cache_or_the_database() {
        let (pool, _, _dir) = database();
        let v = Verifier::new(pool, Arc::new(LastUsed::default()));
        let good = format::generate(&kw());
        let mut bad_check = good.key.expose().to_owned();
        let last = if bad_check.ends_with('0') { "1" } else { "0" };
        bad_check.replace_range(bad_check.len() - 1.., last);
        let system = actix_web::rt::System::new();

        for presented in ["", "kw_short", "Bearer x", bad_check.as_str()] {
            assert!(matches!(
                system.block_on(v.verify(presented)),
                Err(VerifyError::Invalid)
            ));
        }

        let m = v.metrics().snapshot();
        assert_eq!(m.db_lookups + m.negative_hits + m.positive_hits, 0);
        assert_eq!(m.invalid, 4);
    }

    #[test]
    fn a_key_created_after_its_id_was_cached_as_unknown_works() {
        let (pool, user_id, _dir) = database();
        let v = Verifier::new(pool.clone(), Arc::new(LastUsed::default()));
        let key = format::generate(&kw());
        assert!(verify(&v, &key).is_err(), "not created yet");

        store_key(&pool, user_id, &key, None);
        v.key_created(&key.id);

        assert!(verify(&v, &key).is_ok());
    }

    #[test]
    fn forget_all_empties_the_cache() {
        let (pool, user_id, _dir) = database();
        let key = format::generate(&kw());
        store_key(&pool, user_id, &key, None);
        let v = Verifier::new(pool, Arc::new(LastUsed::default()));
        verify(&v, &key).unwrap();

        v.forget_all();
        verify(&v, &key).unwrap();

        assert_eq!(v.metrics().snapshot().db_lookups, 2);
    }
}

//! Counters of the API guard, rendered in the Prometheus text format for
//! `GET /metrics`.
//!
//! Every accepted API call bumps a few of these, so they are plain atomics,
//! striped per thread: two workers incrementing one shared counter would
//! bounce its cache line between cores on every call. A scrape sums the
//! stripes. No metrics crate: the format is a few lines of text, and the
//! hot path must stay a handful of uncontended atomic adds. Hand-written on
//! purpose, and measured: BENCHMARKS.md, "Instructions per request".

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// How one verification ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Malformed, bad checksum, unknown, expired or deleted.
    Invalid,
    /// No key was presented.
    Missing,
    /// The key store could not be asked.
    Error,
    /// A valid key used from an address its allowlist does not name.
    AddressNotAllowed,
    /// A valid key over its rate limit.
    RateLimited,
}

const OUTCOMES: [(Outcome, &str); 6] = [
    (Outcome::Ok, "ok"),
    (Outcome::Invalid, "invalid"),
    (Outcome::Missing, "missing"),
    (Outcome::Error, "error"),
    (Outcome::AddressNotAllowed, "address_not_allowed"),
    (Outcome::RateLimited, "rate_limited"),
];

/// What the verify cache said about a well-formed key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheEvent {
    /// The key's id was cached as known.
    PositiveHit,
    /// The key's id was cached as unknown: refused with no database access.
    NegativeHit,
    /// Not cached; the database knew the id (now cached as known).
    PositiveMiss,
    /// Not cached; the database did not know the id (now cached as unknown).
    NegativeMiss,
}

/// Upper bounds of the latency buckets, in nanoseconds: 1 µs to 1 s, so a
/// cache hit (about a microsecond) and a slow database both land in a
/// bucket of their own.
const BUCKETS_NS: [u64; 19] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];

pub(crate) const STRIPES: usize = 8;

/// One thread's share of every counter, alone on its cache lines.
#[derive(Default)]
#[repr(align(128))]
struct Stripe {
    outcomes: [AtomicU64; 6],
    cache: [AtomicU64; 4],
    db_lookups: AtomicU64,
    /// Per bucket (not cumulative); the last one is +Inf.
    latency: [AtomicU64; BUCKETS_NS.len() + 1],
    latency_sum_ns: AtomicU64,
}

pub struct Metrics {
    stripes: [Stripe; STRIPES],
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            stripes: std::array::from_fn(|_| Stripe::default()),
        }
    }
}

pub(crate) fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Relaxed) % STRIPES;
    }
    INDEX.with(|i| *i)
}

/// A point-in-time sum of the stripes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub ok: u64,
    pub invalid: u64,
    pub missing: u64,
    pub error: u64,
    pub address_not_allowed: u64,
    pub rate_limited: u64,
    pub positive_hits: u64,
    pub negative_hits: u64,
    pub positive_misses: u64,
    pub negative_misses: u64,
    pub db_lookups: u64,
    /// Per bucket, not cumulative; the last one is +Inf.
    pub latency_buckets: Vec<u64>,
    pub latency_sum_ns: u64,
}

impl Snapshot {
    pub fn latency_count(&self) -> u64 {
        self.latency_buckets.iter().sum()
    }
}

/// Gauges read at scrape time from their owners.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gauges {
    pub last_used_pending: u64,
    /// Keys written by last-used flushes since start-up.
    pub last_used_written: u64,
    pub cached_known: u64,
    pub cached_unknown: u64,
}

impl Metrics {
    fn stripe(&self) -> &Stripe {
        &self.stripes[stripe_index()]
    }

    /// A verification that ran (`elapsed` from the presented key to the answer).
    pub fn verification(&self, outcome: Outcome, elapsed: Duration) {
        let s = self.stripe();
        s.outcomes[outcome as usize].fetch_add(1, Relaxed);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_NS.partition_point(|&b| b < ns);
        s.latency[bucket].fetch_add(1, Relaxed);
        s.latency_sum_ns.fetch_add(ns, Relaxed);
    }

    /// A call refused before any lookup ran (no key, a header that is not
    /// text, a key of the wrong shape or with a bad checksum): counted, but
    /// not in the latency histogram.
    pub fn unverified(&self, outcome: Outcome) {
        self.stripe().outcomes[outcome as usize].fetch_add(1, Relaxed);
    }

    pub fn cache(&self, event: CacheEvent) {
        self.stripe().cache[event as usize].fetch_add(1, Relaxed);
    }

    pub fn db_lookup(&self) {
        self.stripe().db_lookups.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let sum = |f: &dyn Fn(&Stripe) -> &AtomicU64| self.stripes.iter().map(|s| f(s).load(Relaxed)).sum::<u64>();
        Snapshot {
            ok: sum(&|s| &s.outcomes[Outcome::Ok as usize]),
            invalid: sum(&|s| &s.outcomes[Outcome::Invalid as usize]),
            missing: sum(&|s| &s.outcomes[Outcome::Missing as usize]),
            error: sum(&|s| &s.outcomes[Outcome::Error as usize]),
            address_not_allowed: sum(&|s| &s.outcomes[Outcome::AddressNotAllowed as usize]),
            rate_limited: sum(&|s| &s.outcomes[Outcome::RateLimited as usize]),
            positive_hits: sum(&|s| &s.cache[CacheEvent::PositiveHit as usize]),
            negative_hits: sum(&|s| &s.cache[CacheEvent::NegativeHit as usize]),
            positive_misses: sum(&|s| &s.cache[CacheEvent::PositiveMiss as usize]),
            negative_misses: sum(&|s| &s.cache[CacheEvent::NegativeMiss as usize]),
            db_lookups: sum(&|s| &s.db_lookups),
            latency_buckets: (0..=BUCKETS_NS.len()).map(|i| sum(&|s| &s.latency[i])).collect(),
            latency_sum_ns: sum(&|s| &s.latency_sum_ns),
        }
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self, gauges: Gauges) -> String {
        let s = self.snapshot();
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail.
        let _ = render_into(&mut out, &s, gauges);
        out
    }
}

fn render_into(out: &mut String, s: &Snapshot, g: Gauges) -> std::fmt::Result {
    writeln!(
        out,
        "# HELP keyward_key_verifications_total API key verifications by outcome."
    )?;
    writeln!(out, "# TYPE keyward_key_verifications_total counter")?;
    let by_outcome = [
        s.ok,
        s.invalid,
        s.missing,
        s.error,
        s.address_not_allowed,
        s.rate_limited,
    ];
    for ((_, label), n) in OUTCOMES.iter().zip(by_outcome) {
        writeln!(out, "keyward_key_verifications_total{{outcome=\"{label}\"}} {n}")?;
    }

    writeln!(
        out,
        "# HELP keyward_key_cache_hits_total Well-formed keys answered from the cache of known (positive) or unknown (negative) key ids."
    )?;
    writeln!(out, "# TYPE keyward_key_cache_hits_total counter")?;
    writeln!(
        out,
        "keyward_key_cache_hits_total{{cache=\"positive\"}} {}",
        s.positive_hits
    )?;
    writeln!(
        out,
        "keyward_key_cache_hits_total{{cache=\"negative\"}} {}",
        s.negative_hits
    )?;
    writeln!(
        out,
        "# HELP keyward_key_cache_misses_total Well-formed keys looked up in the database, by the cache the answer filled."
    )?;
    writeln!(out, "# TYPE keyward_key_cache_misses_total counter")?;
    writeln!(
        out,
        "keyward_key_cache_misses_total{{cache=\"positive\"}} {}",
        s.positive_misses
    )?;
    writeln!(
        out,
        "keyward_key_cache_misses_total{{cache=\"negative\"}} {}",
        s.negative_misses
    )?;
    writeln!(
        out,
        "# HELP keyward_key_db_lookups_total Database queries made to verify a key (failed ones included)."
    )?;
    writeln!(out, "# TYPE keyward_key_db_lookups_total counter")?;
    writeln!(out, "keyward_key_db_lookups_total {}", s.db_lookups)?;

    writeln!(
        out,
        "# HELP keyward_key_verification_duration_seconds Time to verify a presented key of the right shape and checksum."
    )?;
    writeln!(out, "# TYPE keyward_key_verification_duration_seconds histogram")?;
    let mut cumulative = 0u64;
    for (i, n) in s.latency_buckets.iter().enumerate() {
        cumulative += n;
        match BUCKETS_NS.get(i) {
            Some(&ns) => writeln!(
                out,
                "keyward_key_verification_duration_seconds_bucket{{le=\"{}\"}} {cumulative}",
                ns as f64 / 1e9
            )?,
            None => writeln!(
                out,
                "keyward_key_verification_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
            )?,
        }
    }
    writeln!(
        out,
        "keyward_key_verification_duration_seconds_sum {}",
        s.latency_sum_ns as f64 / 1e9
    )?;
    writeln!(out, "keyward_key_verification_duration_seconds_count {cumulative}")?;

    writeln!(
        out,
        "# HELP keyward_key_cache_entries Key ids held in the verify cache (approximate)."
    )?;
    writeln!(out, "# TYPE keyward_key_cache_entries gauge")?;
    writeln!(
        out,
        "keyward_key_cache_entries{{cache=\"positive\"}} {}",
        g.cached_known
    )?;
    writeln!(
        out,
        "keyward_key_cache_entries{{cache=\"negative\"}} {}",
        g.cached_unknown
    )?;
    writeln!(
        out,
        "# HELP keyward_last_used_pending Keys whose last-used time waits for the next flush."
    )?;
    writeln!(out, "# TYPE keyward_last_used_pending gauge")?;
    writeln!(out, "keyward_last_used_pending {}", g.last_used_pending)?;
    writeln!(
        out,
        "# HELP keyward_last_used_written_total Keys whose uses flushes have written."
    )?;
    writeln!(out, "# TYPE keyward_last_used_written_total counter")?;
    writeln!(out, "keyward_last_used_written_total {}", g.last_used_written)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_land_in_the_first_bucket_that_holds_them() {
        let m = Metrics::default();
        m.verification(Outcome::Ok, Duration::from_nanos(1_000));
        m.verification(Outcome::Ok, Duration::from_nanos(1_001));
        m.verification(Outcome::Invalid, Duration::from_secs(5));
        let s = m.snapshot();
        assert_eq!(s.latency_buckets[0], 1);
        assert_eq!(s.latency_buckets[1], 1);
        assert_eq!(s.latency_buckets[BUCKETS_NS.len()], 1);
        assert_eq!(s.latency_count(), 3);
        assert_eq!((s.ok, s.invalid), (2, 1));
    }

    #[test]
    fn the_exposition_has_cumulative_buckets_and_every_outcome() {
        let m = Metrics::default();
        m.verification(Outcome::Ok, Duration::from_micros(3));
        m.unverified(Outcome::Missing);
        m.cache(CacheEvent::NegativeHit);
        let text = m.render(Gauges {
            last_used_pending: 2,
            last_used_written: 5,
            ..Gauges::default()
        });
        assert!(text.contains("keyward_key_verifications_total{outcome=\"ok\"} 1\n"));
        assert!(text.contains("keyward_key_verifications_total{outcome=\"missing\"} 1\n"));
        assert!(text.contains("keyward_key_verifications_total{outcome=\"error\"} 0\n"));
        assert!(text.contains("keyward_key_cache_hits_total{cache=\"negative\"} 1\n"));
        assert!(text.contains("keyward_key_verification_duration_seconds_bucket{le=\"0.0000025\"} 0\n"));
        assert!(text.contains("keyward_key_verification_duration_seconds_bucket{le=\"0.000005\"} 1\n"));
        assert!(text.contains("keyward_key_verification_duration_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(text.contains("keyward_key_verification_duration_seconds_count 1\n"));
        assert!(text.contains("keyward_last_used_pending 2\n"));
        assert!(text.contains("keyward_last_used_written_total 5\n"));
    }
}

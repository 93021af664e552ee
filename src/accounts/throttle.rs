//! In-memory limits: login throttling and reset-request rate limits.
//!
//! Both are per instance and bounded in memory. A lock-out always ends by
//! itself, so an attacker can slow a victim's logins down but never lock
//! them out for good.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before stale ones are pruned.
const MAX_ENTRIES: usize = 100_000;

struct Failures {
    count: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
}

/// After `max_failures` failures within `window`, further attempts are
/// refused for `lockout`, doubling with each further failure (capped at the
/// window). A success clears the record.
pub struct LoginThrottle {
    entries: Mutex<HashMap<String, Failures>>,
    max_failures: u32,
    window: Duration,
    lockout: Duration,
}

impl LoginThrottle {
    pub fn new(max_failures: u32, window: Duration, lockout: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            max_failures: max_failures.max(1),
            window,
            lockout,
        }
    }

    /// `Err(wait)` while `key` is locked out.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(key).and_then(|f| f.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    pub fn fail(&self, key: &str) {
        let now = Instant::now();
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            let window = self.window;
            map.retain(|_, f| now.duration_since(f.window_start) < window || f.locked_until.is_some_and(|u| u > now));
        }
        let f = map.entry(key.to_owned()).or_insert(Failures {
            count: 0,
            window_start: now,
            locked_until: None,
        });
        if now.duration_since(f.window_start) > self.window && f.locked_until.is_none_or(|u| u <= now) {
            *f = Failures {
                count: 0,
                window_start: now,
                locked_until: None,
            };
        }
        f.count += 1;
        if f.count >= self.max_failures {
            let doublings = (f.count - self.max_failures).min(16);
            let lock = self
                .lockout
                .saturating_mul(1 << doublings)
                .min(self.window.max(self.lockout));
            f.locked_until = Some(now + lock);
        }
    }

    pub fn succeed(&self, key: &str) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// At most `max` events per key within a sliding `window`.
pub struct RateLimit {
    entries: Mutex<HashMap<String, Vec<Instant>>>,
    max: usize,
    window: Duration,
}

impl RateLimit {
    pub fn new(max: usize, window: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            max: max.max(1),
            window,
        }
    }

    /// Records an event for `key`; false when the limit is already reached.
    pub fn allow(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            let window = self.window;
            map.retain(|_, v| v.last().is_some_and(|t| now.duration_since(*t) < window));
        }
        let hits = map.entry(key.to_owned()).or_default();
        hits.retain(|t| now.duration_since(*t) < self.window);
        if hits.len() >= self.max {
            return false;
        }
        hits.push(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lockout_starts_after_the_limit_and_a_success_clears_it() {
        let t = LoginThrottle::new(3, Duration::from_secs(900), Duration::from_secs(30));
        for _ in 0..2 {
            t.fail("u:alice");
        }
        assert!(t.check("u:alice").is_ok());
        t.fail("u:alice");
        let wait = t.check("u:alice").unwrap_err();
        assert!(wait <= Duration::from_secs(30) && wait > Duration::from_secs(25));
        t.fail("u:alice");
        assert!(t.check("u:alice").unwrap_err() > Duration::from_secs(30), "grows");
        assert!(t.check("u:bob").is_ok());
        t.succeed("u:alice");
        assert!(t.check("u:alice").is_ok());
    }

    #[test]
    fn rate_limits_count_per_key() {
        let r = RateLimit::new(2, Duration::from_secs(60));
        assert!(r.allow("a"));
        assert!(r.allow("a"));
        assert!(!r.allow("a"));
        assert!(r.allow("b"));
    }
}

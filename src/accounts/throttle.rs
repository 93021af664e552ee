//! In-memory limits: login throttling and reset-request rate limits.
//!
//! Both are per instance and bounded in memory. A lock-out always ends by
//! itself, so an attacker can slow a victim's logins down but never lock
//! them out for good. How the login limits combine, and why, is in
//! docs/login-throttling.md.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::time::Clock;

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
    clock: Clock,
    entries: Mutex<HashMap<String, Failures>>,
    max_failures: u32,
    window: Duration,
    lockout: Duration,
}

impl LoginThrottle {
    pub fn new(max_failures: u32, window: Duration, lockout: Duration) -> Self {
        Self {
            clock: Clock::default(),
            entries: Mutex::new(HashMap::new()),
            max_failures: max_failures.max(1),
            window,
            lockout,
        }
    }

    /// The same throttle, timed by `clock` (the instance's).
    pub fn with_clock(mut self, clock: &Clock) -> Self {
        self.clock = clock.clone();
        self
    }

    /// `Err(wait)` while `key` is locked out.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = self.clock.instant();
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(key).and_then(|f| f.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    pub fn fail(&self, key: &str) {
        let now = self.clock.instant();
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

    /// Takes back one failure counted in advance (`LoginLimits::charge`)
    /// for an attempt that succeeded.
    pub fn refund(&self, key: &str) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = map.get_mut(key) {
            f.count = f.count.saturating_sub(1);
            if f.count < self.max_failures {
                f.locked_until = None;
            }
        }
    }
}

/// One login attempt, as the limits see it.
pub struct Attempt {
    /// The username as typed, folded to lower case and cut to 64 chars.
    username: String,
    /// The client's address.
    address: String,
    /// The device id from a valid device cookie issued to this username
    /// (see `web::device`): a browser that has logged into this account.
    device: Option<String>,
}

impl Attempt {
    pub fn new(username: &str, address: &str, device: Option<String>) -> Self {
        Self {
            username: username.trim().to_ascii_lowercase().chars().take(64).collect(),
            address: crate::net::limit_key(address),
            device,
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
        let limit = |factor: u32| LoginThrottle::new(max_failures.saturating_mul(factor), window, lockout);
        Self {
            by_pair: limit(1),
            by_address: limit(4),
            by_username: limit(2),
            by_device: limit(1),
        }
    }

    /// The same limits, timed by `clock` (the instance's).
    pub fn with_clock(mut self, clock: &Clock) -> Self {
        for t in [
            &mut self.by_pair,
            &mut self.by_address,
            &mut self.by_username,
            &mut self.by_device,
        ] {
            t.clock = clock.clone();
        }
        self
    }

    fn keys<'a>(&'a self, a: &Attempt) -> Vec<(&'a LoginThrottle, String)> {
        match &a.device {
            Some(device) => vec![(&self.by_device, format!("{}\n{device}", a.username))],
            None => vec![
                (&self.by_pair, format!("{}\n{}", a.username, a.address)),
                (&self.by_address, a.address.clone()),
                (&self.by_username, a.username.clone()),
            ],
        }
    }

    /// `Err(wait)` while any limit that applies to this attempt is reached.
    pub fn check(&self, a: &Attempt) -> Result<(), Duration> {
        self.keys(a)
            .iter()
            .filter_map(|(t, k)| t.check(k).err())
            .max()
            .map_or(Ok(()), Err)
    }

    pub fn failed(&self, a: &Attempt) {
        self.keys(a).iter().for_each(|(t, k)| t.fail(k));
    }

    /// `check`, then counts the attempt as a failure before any password
    /// is hashed: requests racing in together cannot all pass the check
    /// while the first ones are still hashing. `succeeded` takes it back.
    pub fn charge(&self, a: &Attempt) -> Result<(), Duration> {
        self.check(a)?;
        self.failed(a);
        Ok(())
    }

    /// Clears what concerns this account only; the address's count only
    /// gets back the failure charged in advance for this attempt.
    pub fn succeeded(&self, a: &Attempt) {
        self.by_pair.succeed(&format!("{}\n{}", a.username, a.address));
        self.by_username.succeed(&a.username);
        if a.device.is_none() {
            self.by_address.refund(&a.address);
        }
        if let Some(device) = &a.device {
            self.by_device.succeed(&format!("{}\n{device}", a.username));
        }
    }
}

/// At most `max` events per key within a sliding `window`.
pub struct RateLimit {
    clock: Clock,
    entries: Mutex<HashMap<String, Vec<Instant>>>,
    max: usize,
    window: Duration,
}

impl RateLimit {
    pub fn new(max: usize, window: Duration) -> Self {
        Self {
            clock: Clock::default(),
            entries: Mutex::new(HashMap::new()),
            max: max.max(1),
            window,
        }
    }

    /// The same limit, timed by `clock` (the instance's).
    pub fn with_clock(mut self, clock: &Clock) -> Self {
        self.clock = clock.clone();
        self
    }

    /// Records an event for `key`; false when the limit is already reached.
    pub fn allow(&self, key: &str) -> bool {
        let now = self.clock.instant();
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

    fn limits() -> LoginLimits {
        LoginLimits::new(3, Duration::from_secs(900), Duration::from_secs(30))
    }

    #[test]
    fn a_success_does_not_clear_the_address_count() {
        let l = limits();
        // 11 failures on other accounts, a success on one's own, repeated.
        for round in 0..3 {
            for victim in 0..4 {
                let a = Attempt::new(&format!("victim{round}{victim}"), "10.0.0.1", None);
                if l.check(&a).is_ok() {
                    l.failed(&a);
                }
            }
            let own = Attempt::new("attacker", "10.0.0.1", None);
            if l.charge(&own).is_ok() {
                l.succeeded(&own);
            }
        }
        assert!(l.check(&Attempt::new("someone", "10.0.0.1", None)).is_err());
        assert!(l.check(&Attempt::new("someone", "10.0.0.2", None)).is_ok());
    }

    #[test]
    fn a_known_device_is_judged_on_its_own() {
        let l = limits();
        for addr in ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"] {
            l.failed(&Attempt::new("alice", addr, None));
        }
        assert!(
            l.check(&Attempt::new("alice", "10.0.0.9", None)).is_err(),
            "account limit"
        );
        assert!(l.check(&Attempt::new("alice", "10.0.0.1", Some("dev1".into()))).is_ok());
        for _ in 0..3 {
            l.failed(&Attempt::new("alice", "10.0.0.1", Some("dev1".into())));
        }
        assert!(l
            .check(&Attempt::new("alice", "10.0.0.1", Some("dev1".into())))
            .is_err());
        assert!(l.check(&Attempt::new("alice", "10.0.0.1", Some("dev2".into()))).is_ok());
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

//! Per-key restrictions (docs/keys.md): an address allowlist and a rate
//! limit, checked on every call from the cached key, so they cost
//! nanoseconds and no lock shared with other keys.

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

use ipnet::IpNet;

/// Entries an allowlist may hold.
pub const MAX_ALLOWED: usize = 100;

/// Where a key may be used from: addresses and networks, IPv4 and IPv6.
/// Empty means anywhere.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedIps(Vec<IpNet>);

impl AllowedIps {
    /// Addresses or CIDRs separated by commas, spaces or newlines. Each is
    /// normalised (`10.1.2.3/8` is `10.0.0.0/8`; a single address is a /32
    /// or /128), and duplicates are dropped.
    pub fn parse(input: &str) -> Result<Self, String> {
        let mut nets: Vec<IpNet> = Vec::new();
        for entry in input.split([',', ' ', '\n', '\r', '\t']).filter(|e| !e.is_empty()) {
            let net = IpNet::from_str(entry)
                .map(|n| n.trunc())
                .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                .map_err(|_| {
                    let shown: String = entry.chars().take(45).collect();
                    format!("\u{201c}{shown}\u{201d} is not an IP address or network (like 203.0.113.7, 10.0.0.0/8 or 2001:db8::/32).")
                })?;
            if !nets.contains(&net) {
                nets.push(net);
            }
            if nets.len() > MAX_ALLOWED {
                return Err(format!("At most {MAX_ALLOWED} addresses or networks."));
            }
        }
        Ok(Self(nets))
    }

    /// As stored, and as shown: one entry after the other, space-separated.
    pub fn to_text(&self) -> String {
        self.0.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
    }

    pub fn entries(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.is_empty() || self.0.iter().any(|n| n.contains(&ip))
    }
}

pub const MAX_RATE: u32 = 1_000_000;

/// `rate_limit_per_minute` from a form: empty for none, else 1 to 1,000,000.
pub fn parse_rate_limit(input: &str) -> Result<Option<u32>, String> {
    let input = input.trim();
    if input.is_empty() {
        return Ok(None);
    }
    match input.replace(['_', ','], "").parse::<u32>() {
        Ok(n) if (1..=MAX_RATE).contains(&n) => Ok(Some(n)),
        _ => {
            Err("Enter a whole number of calls per minute from 1 to 1,000,000, or leave it empty for no limit.".into())
        }
    }
}

/// A GCRA limiter ("generic cell rate algorithm", as in the `governor`
/// crate): `per_minute` calls per minute, all of them allowed in a burst,
/// refilling evenly. Its whole state is one atomic time, so checking it is
/// one compare-and-swap on this key's own memory. Counted per instance.
#[derive(Debug)]
pub struct Limiter {
    per_minute: u32,
    /// Microseconds between two calls at the sustained rate.
    interval: i64,
    /// The theoretical arrival time: when the bucket is empty again.
    tat: AtomicI64,
}

/// A limiter's answer, with what the `RateLimit-*` headers say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// When refused: seconds until the next call would pass.
    pub retry_after_secs: u64,
}

const MINUTE: i64 = 60_000_000;

impl Limiter {
    pub fn new(per_minute: u32) -> Self {
        let per_minute = per_minute.clamp(1, MAX_RATE);
        Self {
            per_minute,
            interval: MINUTE / i64::from(per_minute),
            tat: AtomicI64::new(i64::MIN),
        }
    }

    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// One call at `now` (microseconds).
    pub fn check(&self, now: i64) -> Decision {
        let burst = self.interval * i64::from(self.per_minute);
        let mut tat = self.tat.load(Relaxed);
        loop {
            let start = tat.max(now);
            let next = start + self.interval;
            if next - now > burst {
                let wait = next - now - burst;
                return Decision {
                    allowed: false,
                    limit: self.per_minute,
                    remaining: 0,
                    reset_secs: secs(tat - now),
                    retry_after_secs: secs(wait).max(1),
                };
            }
            match self.tat.compare_exchange_weak(tat, next, Relaxed, Relaxed) {
                Ok(_) => {
                    let remaining = (burst - (next - now)) / self.interval;
                    return Decision {
                        allowed: true,
                        limit: self.per_minute,
                        remaining: remaining.clamp(0, i64::from(self.per_minute)) as u32,
                        reset_secs: secs(next - now),
                        retry_after_secs: 0,
                    };
                }
                Err(seen) => tat = seen,
            }
        }
    }
}

/// Whole seconds, rounded up.
fn secs(micros: i64) -> u64 {
    (micros.max(0) as u64).div_ceil(1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlists_parse_normalise_and_match() {
        let a = AllowedIps::parse("203.0.113.7, 10.1.2.3/8\n2001:db8::1/32  203.0.113.7").unwrap();
        assert_eq!(a.to_text(), "203.0.113.7/32 10.0.0.0/8 2001:db8::/32");
        assert!(a.allows("10.200.0.1".parse().unwrap()));
        assert!(a.allows("::ffff:10.0.0.1".parse().unwrap()));
        assert!(a.allows("2001:db8:ffff::1".parse().unwrap()));
        assert!(!a.allows("203.0.113.8".parse().unwrap()));
        assert!(AllowedIps::parse("").unwrap().allows("192.0.2.1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "example.com", "1.2.3", "::g"] {
            assert!(AllowedIps::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rate_limits_parse() {
        assert_eq!(parse_rate_limit(" ").unwrap(), None);
        assert_eq!(parse_rate_limit("60").unwrap(), Some(60));
        assert_eq!(parse_rate_limit("1,000,000").unwrap(), Some(1_000_000));
        for bad in ["0", "-1", "1000001", "ten", "1.5"] {
            assert!(parse_rate_limit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_limiter_lets_n_through_then_refills() {
        let l = Limiter::new(3);
        let t0 = 1_000_000_000;
        for left in [2, 1, 0] {
            let d = l.check(t0);
            assert!(d.allowed);
            assert_eq!(d.remaining, left);
        }
        let refused = l.check(t0);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs, 20);
        assert!(!l.check(t0 + 19_000_000).allowed);
        assert!(l.check(t0 + 20_000_000).allowed, "one call refilled after 20 s");
        assert!(l.check(t0 + 200_000_000).allowed);
    }
}

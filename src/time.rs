//! Wall-clock helpers. Times are stored as UTC `Timestamp`s with microsecond
//! precision, the finest both SQLite (text) and PostgreSQL keep alike.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, SecondsFormat, SubsecRound, Utc};

pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

/// An instance's clock for what it limits in time (login lock-outs, rate
/// limits, idle sessions): the wall clock plus an offset that only tests
/// and drills move forward (`advance`), so that a lock-out lifting or a
/// session going idle is seen without waiting. Clones share the offset.
#[derive(Clone, Debug, Default)]
pub struct Clock(Arc<AtomicU64>);

impl Clock {
    fn offset(&self) -> Duration {
        Duration::from_micros(self.0.load(Relaxed))
    }

    /// The monotonic time, for intervals.
    pub fn instant(&self) -> Instant {
        Instant::now() + self.offset()
    }

    /// The calendar time, UTC.
    pub fn now(&self) -> NaiveDateTime {
        now() + chrono::Duration::from_std(self.offset()).unwrap_or_default()
    }

    /// Moves this clock (and every clone of it) forward.
    pub fn advance(&self, by: Duration) {
        self.0
            .fetch_add(u64::try_from(by.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }
}

pub fn rfc3339(t: NaiveDateTime) -> String {
    DateTime::<Utc>::from_naive_utc_and_offset(t, Utc).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// "2026-11-22 05:33 UTC"
pub fn exact(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// "3 minutes ago", "in 5 days", "just now".
pub fn relative(t: NaiveDateTime, now: NaiveDateTime) -> String {
    let secs = (now - t).num_seconds();
    let (future, s) = if secs < 0 { (true, -secs) } else { (false, secs) };
    if s < 45 {
        return if future {
            "in a few seconds".into()
        } else {
            "just now".into()
        };
    }
    let (n, unit) = match s {
        s if s < 90 * 60 => ((s + 30) / 60, "minute"),
        s if s < 36 * 3600 => ((s + 1800) / 3600, "hour"),
        s if s < 45 * 86400 => ((s + 43200) / 86400, "day"),
        s if s < 548 * 86400 => ((s + 15 * 86400) / (30 * 86400), "month"),
        s => ((s + 182 * 86400) / (365 * 86400), "year"),
    };
    let plural = if n == 1 { "" } else { "s" };
    if future {
        format!("in {n} {unit}{plural}")
    } else {
        format!("{n} {unit}{plural} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn relative_times_read_naturally() {
        let n = now();
        assert_eq!(relative(n, n), "just now");
        assert_eq!(relative(n - Duration::minutes(3), n), "3 minutes ago");
        assert_eq!(relative(n - Duration::minutes(1), n), "1 minute ago");
        assert_eq!(relative(n + Duration::days(5), n), "in 5 days");
        assert_eq!(relative(n - Duration::hours(2), n), "2 hours ago");
    }
}

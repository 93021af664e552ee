//! Uses of keys, batched in memory: the last-used time and address, calls
//! per hour, and the scopes each key was checked for.
//!
//! Writing on every API call would put a database write on the hot path
//! (it cost Laravel Sanctum ~20% throughput and caused lock contention).
//! Instead each accepted call is recorded here, and a background task
//! writes at most one update per key per interval (and per hour and scope
//! used), in one transaction, and once more on shutdown.
//!
//! Each worker thread records into a shard of its own, so recording takes
//! a lock no other worker takes; only the flush visits every shard.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use chrono::NaiveDateTime;
use diesel::Connection as _;

use super::format::ID_LEN;
use super::store;
use crate::db::{self, Pool};

/// A key id held by value: a pending entry is one small map slot, with no
/// string allocated for it.
type Id = [u8; ID_LEN];

fn id_of(key_id: &str) -> Option<Id> {
    Id::try_from(key_id.as_bytes()).ok()
}

/// A time as microseconds since 1970 (UTC).
type Stamp = i64;

const HOUR: i64 = 3_600_000_000;

fn stamp(at: NaiveDateTime) -> Stamp {
    at.and_utc().timestamp_micros()
}

fn time(at: Stamp) -> Option<NaiveDateTime> {
    chrono::DateTime::from_timestamp_micros(at).map(|t| t.naive_utc())
}

/// What one key did since the last flush.
///
/// 32 bytes, with nothing allocated for a key used from IPv4 addresses in
/// one hour (nearly every key between two flushes): a pending entry exists
/// per key in use and per worker thread, so with 100,000 keys in use its
/// size is most of what recording uses costs in memory (BENCHMARKS.md).
#[derive(Clone, Debug, Default)]
pub struct Use {
    last: Stamp,
    /// Calls in hour `hour` (hours since 1970), when `calls > 0`.
    hour: u32,
    calls: u32,
    /// The last call's address, when IPv4.
    v4: Option<Ipv4Addr>,
    /// Other hours, an IPv6 address, and scopes: rare, so boxed.
    more: Option<Box<More>>,
}

#[derive(Clone, Debug, Default)]
struct More {
    v6: Option<Ipv6Addr>,
    /// Calls in hours other than `Use::hour`.
    hours: Vec<(u32, u64)>,
    /// Scopes the key was checked for, with when last.
    scopes: Vec<(Box<str>, Stamp)>,
}

// The size the memory figures in BENCHMARKS.md rely on.
const _: () = assert!(std::mem::size_of::<Use>() <= 32);

fn hour_of(at: Stamp) -> u32 {
    u32::try_from(at.div_euclid(HOUR)).unwrap_or(0)
}

impl Use {
    fn more(&mut self) -> &mut More {
        self.more.get_or_insert_with(Box::default)
    }

    fn call(&mut self, at: Stamp, address: Option<IpAddr>) {
        self.seen(at, address);
        self.add_calls(hour_of(at), 1);
    }

    /// The last use and its address.
    fn seen(&mut self, at: Stamp, address: Option<IpAddr>) {
        if at < self.last {
            return;
        }
        self.last = at;
        match address {
            Some(IpAddr::V4(a)) => {
                self.v4 = Some(a);
                if let Some(m) = &mut self.more {
                    m.v6 = None;
                }
            }
            Some(IpAddr::V6(a)) => {
                self.v4 = None;
                self.more().v6 = Some(a);
            }
            None => {}
        }
    }

    fn address(&self) -> Option<IpAddr> {
        self.v4
            .map(IpAddr::V4)
            .or_else(|| self.more.as_ref().and_then(|m| m.v6).map(IpAddr::V6))
    }

    fn add_calls(&mut self, hour: u32, n: u64) {
        if self.calls == 0 || self.hour == hour {
            if let Some(sum) = u32::try_from(n).ok().and_then(|n| self.calls.checked_add(n)) {
                self.hour = hour;
                self.calls = sum;
                return;
            }
        }
        let hours = &mut self.more().hours;
        match hours.iter_mut().find(|(h, _)| *h == hour) {
            Some((_, m)) => *m += n,
            None => hours.push((hour, n)),
        }
    }

    /// Calls per hour (the hour's start).
    fn hours(&self) -> impl Iterator<Item = (Stamp, u64)> + '_ {
        let first = (self.calls > 0).then_some((self.hour, u64::from(self.calls)));
        let rest = self.more.iter().flat_map(|m| m.hours.iter().copied());
        first.into_iter().chain(rest).map(|(h, n)| (i64::from(h) * HOUR, n))
    }

    fn scopes(&self) -> &[(Box<str>, Stamp)] {
        self.more.as_ref().map_or(&[], |m| &m.scopes)
    }

    fn scope(&mut self, scope: &str, at: Stamp) {
        let scopes = &mut self.more().scopes;
        match scopes.iter_mut().find(|(s, _)| &**s == scope) {
            Some((_, t)) => *t = (*t).max(at),
            None => scopes.push((scope.into(), at)),
        }
    }

    fn merge(&mut self, other: Use) {
        self.seen(other.last, other.address());
        for (hour, n) in other.hours() {
            self.add_calls(hour_of(hour), n);
        }
        for (scope, at) in other.scopes() {
            self.scope(scope, *at);
        }
    }
}

/// Key ids are chosen by callers only among existing keys here, but the
/// hasher is keyed per process all the same; foldhash costs a fraction of
/// SipHash on 8 bytes, and this runs on every accepted call.
type Map = HashMap<Id, Use, foldhash::fast::RandomState>;

type Shard = Mutex<Map>;

static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's shard of each `LastUsed` it has recorded into.
    static SHARDS: RefCell<Vec<(u64, Arc<Shard>)>> = const { RefCell::new(Vec::new()) };
}

/// Keys pending in one worker's shard that call for a flush at once, not
/// at the next tick. Between two ticks a sweep over many keys would leave
/// every key it touched pending in every worker's shard (at 100,000 keys,
/// ~5 MB a worker, on top of the cache), and the flush would then hold them
/// all in one batch: this bounds what uses cost in memory, whatever the
/// number of keys in use (BENCHMARKS.md, "Where the memory went"). A shard
/// of this many keys takes ~0.7 MB; working sets below it (a busy API's
/// few thousand keys) are written on the tick as before, once per key.
pub(crate) const PRESSURE: usize = 16_384;

pub struct LastUsed {
    owner: u64,
    shards: Mutex<Vec<Arc<Shard>>>,
    /// Keys written by flushes so far (`/metrics`; tests wait on it).
    written: AtomicU64,
    /// Told when a shard reaches `PRESSURE` keys.
    pressure: tokio::sync::Notify,
    /// One flush at a time: the shutdown flush (or a test's) waits for the
    /// one in progress, whose batch no other flush can see, and then
    /// writes what is left.
    flushing: tokio::sync::Mutex<()>,
}

impl Default for LastUsed {
    fn default() -> Self {
        Self {
            owner: NEXT_OWNER.fetch_add(1, Relaxed),
            shards: Mutex::new(Vec::new()),
            written: AtomicU64::new(0),
            pressure: tokio::sync::Notify::new(),
            flushing: tokio::sync::Mutex::new(()),
        }
    }
}

impl LastUsed {
    /// Runs `f` on this thread's shard.
    fn with_shard<T>(&self, f: impl FnOnce(&mut Map) -> T) -> T {
        SHARDS.with(|shards| {
            let mut shards = shards.borrow_mut();
            let shard = match shards.iter().find(|(o, _)| *o == self.owner) {
                Some((_, s)) => s,
                None => {
                    let s: Arc<Shard> = Arc::default();
                    self.shards.lock().unwrap_or_else(|p| p.into_inner()).push(s.clone());
                    shards.push((self.owner, s));
                    &shards[shards.len() - 1].1
                }
            };
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut map)
        })
    }

    /// Records an accepted call of the key with this id, from `address`;
    /// ids are 8 ASCII characters, anything else is ignored.
    pub fn record(&self, key_id: &str, at: NaiveDateTime) {
        self.record_from(key_id, at, None);
    }

    pub fn record_from(&self, key_id: &str, at: NaiveDateTime, address: Option<IpAddr>) {
        self.record_micros(key_id, stamp(at), address);
    }

    /// `record_from` with the time in microseconds since 1970 (UTC).
    pub fn record_micros(&self, key_id: &str, at: i64, address: Option<IpAddr>) {
        if let Some(id) = id_of(key_id) {
            let filled = self.with_shard(|m| match m.entry(id) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    e.into_mut().call(at, address);
                    false
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(Use::default()).call(at, address);
                    m.len() == PRESSURE
                }
            });
            // Once per filling of the shard (the key that filled it was
            // new; a flush empties the shard).
            if filled {
                self.pressure.notify_one();
            }
        }
    }

    /// Resolves when a shard has reached `PRESSURE` keys since this was
    /// last awaited: the flush loop then flushes without waiting for its
    /// tick.
    pub async fn pressed(&self) {
        self.pressure.notified().await;
    }

    /// Records that the key was checked for `scope` (and had it).
    pub fn record_scope(&self, key_id: &str, scope: &str, at: NaiveDateTime) {
        self.record_scope_micros(key_id, scope, stamp(at));
    }

    /// `record_scope` with the time in microseconds since 1970 (UTC).
    pub fn record_scope_micros(&self, key_id: &str, scope: &str, at: i64) {
        if let Some(id) = id_of(key_id) {
            self.with_shard(|m| m.entry(id).or_default().scope(scope, at));
        }
    }

    fn all_shards(&self) -> Vec<Arc<Shard>> {
        self.shards.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A use recorded here but not yet written, so pages can show it at
    /// once: its time and address.
    pub fn pending_use(&self, key_id: &str) -> Option<(NaiveDateTime, Option<IpAddr>)> {
        let id = id_of(key_id)?;
        let mut best: Option<(Stamp, Option<IpAddr>)> = None;
        for shard in self.all_shards() {
            if let Some(u) = shard.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
                if u.last > 0 && best.is_none_or(|(t, _)| u.last > t) {
                    best = Some((u.last, u.address()));
                }
            }
        }
        let (at, address) = best?;
        Some((time(at)?, address))
    }

    pub fn pending(&self, key_id: &str) -> Option<NaiveDateTime> {
        self.pending_use(key_id).map(|(t, _)| t)
    }

    /// Calls recorded but not yet written, per hour.
    pub fn pending_calls(&self, key_id: &str) -> Vec<(NaiveDateTime, u64)> {
        let Some(id) = id_of(key_id) else {
            return Vec::new();
        };
        let mut total = Use::default();
        for shard in self.all_shards() {
            if let Some(u) = shard.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
                total.merge(u.clone());
            }
        }
        total.hours().filter_map(|(h, n)| Some((time(h)?, n))).collect()
    }

    /// Keys recorded and not yet taken by a flush (`/metrics`).
    pub fn pending_count(&self) -> usize {
        self.pending_in_shards()
    }

    pub fn forget(&self, key_id: &str) {
        if let Some(id) = id_of(key_id) {
            for shard in self.all_shards() {
                shard.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            }
        }
    }

    /// Keys written by flushes since start-up (a key flushed twice counts
    /// twice).
    pub fn written_count(&self) -> u64 {
        self.written.load(Relaxed)
    }

    /// Empties every shard into one batch. The shards give their tables
    /// away: what a flush leaves behind is empty, not a table sized for the
    /// busiest interval since start-up.
    fn take(&self) -> Map {
        let mut batch = Map::default();
        self.fold_into(&mut batch);
        batch
    }

    /// Moves every shard's uses into `batch`: a key used on several
    /// workers, or again since the batch was taken, is one entry there.
    fn fold_into(&self, batch: &mut Map) {
        for shard in self.all_shards() {
            let taken = std::mem::take(&mut *shard.lock().unwrap_or_else(|p| p.into_inner()));
            if batch.is_empty() {
                // Also lets go of an emptied batch's table.
                *batch = taken;
                continue;
            }
            for (id, u) in taken {
                batch.entry(id).or_default().merge(u);
            }
        }
    }

    /// Puts uses back after a failed write, for the next try.
    fn put_back(&self, uses: impl IntoIterator<Item = (Id, Use)>) {
        self.with_shard(|m| {
            for (id, u) in uses {
                m.entry(id).or_default().merge(u);
            }
        });
    }

    /// Writes every pending use, in transactions of at most `FLUSH_CHUNK`
    /// keys; what a failed transaction held is kept for the next try.
    /// Returns how many keys were written.
    ///
    /// In chunks because on SQLite a transaction holds the one write lock:
    /// a sweep over 100,000 keys made one transaction of ~200,000
    /// statements, held the lock for over 10 s under load, and logins,
    /// which write a session, failed with "database is locked"
    /// (BENCHMARKS.md). Between chunks the flush pauses as long as the
    /// chunk took, so a waiting writer finds the lock free.
    pub async fn flush(&self, pool: &Pool) -> anyhow::Result<usize> {
        let _one_at_a_time = self.flushing.lock().await;
        let mut batch = self.take();
        let mut written = 0;
        let mut folds = 0;
        while !batch.is_empty() {
            // Taken off the batch as it is written: nothing is copied but
            // the chunk in hand.
            let chunk: Vec<(Id, Use)> = batch.extract_if(|_, _| true).take(FLUSH_CHUNK).collect();
            let chunk = Arc::new(chunk);
            let work = chunk.clone();
            let started = std::time::Instant::now();
            let result = db::run(pool, move |conn| {
                conn.transaction::<_, diesel::result::Error, _>(|conn| write_uses(conn, &work))?;
                Ok(())
            })
            .await;
            match result {
                Ok(()) => {
                    written += chunk.len();
                    self.written.fetch_add(chunk.len() as u64, Relaxed);
                }
                Err(e) => {
                    let chunk = Arc::try_unwrap(chunk).unwrap_or_else(|c| (*c).clone());
                    self.put_back(chunk.into_iter().chain(batch));
                    return Err(e);
                }
            }
            // A sweep over many keys outpaces the writes: what the workers
            // recorded meanwhile joins this batch rather than piling up in
            // every worker's shard until the next flush, where each key
            // would be held once per worker (`PRESSURE`).
            // A bounded number of times, so that a flush ends under
            // steady load too (its log line, and the next one, which the
            // shards' pressure then starts at once).
            if folds < FOLDS_PER_FLUSH && self.pending_in_shards() >= PRESSURE {
                self.fold_into(&mut batch);
                folds += 1;
            }
            if !batch.is_empty() {
                actix_web::rt::time::sleep(started.elapsed()).await;
            }
        }
        Ok(written)
    }

    /// Keys pending in the workers' shards (not in a flush's batch).
    fn pending_in_shards(&self) -> usize {
        self.all_shards()
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

/// Keys written per flush transaction (see `LastUsed::flush`).
const FLUSH_CHUNK: usize = 1_000;

/// How many times one flush takes in what the workers recorded while it
/// wrote (see `LastUsed::flush`).
const FOLDS_PER_FLUSH: usize = 8;

/// One chunk's uses: last use and address, calls per hour, scopes.
fn write_uses(conn: &mut crate::db::DbConnection, uses: &[(Id, Use)]) -> diesel::QueryResult<()> {
    for (id, u) in uses {
        // Only ASCII ids and representable times are recorded.
        let Ok(id) = std::str::from_utf8(id) else { continue };
        if let Some(at) = time(u.last).filter(|_| u.last > 0) {
            store::touch(conn, id, at, u.address().map(|a| a.to_string()).as_deref())?;
        }
        for (hour, calls) in u.hours() {
            if let Some(hour) = time(hour) {
                store::add_calls(conn, id, hour, i64::try_from(calls).unwrap_or(i64::MAX))?;
            }
        }
        for (scope, at) in u.scopes() {
            if let Some(at) = time(*at) {
                store::scope_used(conn, id, scope, at)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn a_shard_that_fills_up_asks_once_for_a_flush() {
        use futures_util::FutureExt as _;
        let lu = LastUsed::default();
        let t = at("2026-12-01 10:00:00");
        for i in 0..PRESSURE - 1 {
            lu.record(&format!("{i:08}"), t);
        }
        // A key used again is not a new pending key.
        lu.record("00000000", t);
        assert!(lu.pressed().now_or_never().is_none(), "not full yet");
        lu.record(&format!("{:08}", PRESSURE - 1), t);
        assert!(lu.pressed().now_or_never().is_some(), "full: a flush is asked for");
        // Full, and a key already pending is used again: not asked again.
        lu.record("00000001", t);
        assert!(lu.pressed().now_or_never().is_none(), "asked once per filling");
        lu.record(&format!("{:08}", PRESSURE), t);
        assert!(lu.pressed().now_or_never().is_none(), "asked once per filling");
        // A flush empties the shard; it may fill up and ask again.
        drop(lu.take());
        for i in 0..PRESSURE {
            lu.record(&format!("{i:08}"), t);
        }
        assert!(lu.pressed().now_or_never().is_some());
    }

    #[test]
    fn uses_from_several_threads_add_up() {
        let lu = Arc::new(LastUsed::default());
        let threads: Vec<_> = (0..3)
            .map(|i| {
                let lu = lu.clone();
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        lu.record_from("AbCdEfGh", at("2026-12-01 10:15:00"), None);
                    }
                    lu.record_from(
                        "AbCdEfGh",
                        at(&format!("2026-12-01 11:0{i}:00")),
                        Some([10, 0, 0, i].into()),
                    );
                    lu.record_scope("AbCdEfGh", "read", at("2026-12-01 11:00:00"));
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());

        let calls = lu.pending_calls("AbCdEfGh");
        assert_eq!(calls.iter().map(|(_, n)| n).sum::<u64>(), 33);
        assert_eq!(
            lu.pending_use("AbCdEfGh").unwrap(),
            (at("2026-12-01 11:02:00"), Some([10, 0, 0, 2].into()))
        );
        let batch = lu.take();
        let u = &batch[b"AbCdEfGh"];
        assert_eq!(u.hours().count(), 2);
        assert_eq!(u.scopes().len(), 1);
        assert_eq!(lu.pending_count(), 0);
    }

    /// The compact record keeps what the wide one did: the newest call's
    /// address whichever family, every hour's count, scopes, across merges.
    #[test]
    fn a_use_keeps_the_newest_address_every_hour_and_scopes_when_merged() {
        let t = |s: &str| stamp(at(s));
        let v4: IpAddr = [192, 0, 2, 7].into();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let mut a = Use::default();
        a.call(t("2026-12-01 10:00:00"), Some(v4));
        a.call(t("2026-12-01 10:30:00"), Some(v6));
        a.call(t("2026-12-01 09:59:59"), Some(v4)); // older: address kept
        a.call(t("2026-12-01 11:00:00"), None); // no address: kept
        assert_eq!(a.address(), Some(v6));
        let mut b = Use::default();
        b.call(t("2026-12-01 11:15:00"), Some(v4));
        b.scope("read", t("2026-12-01 11:15:00"));
        a.merge(b);
        assert_eq!(a.address(), Some(v4), "the newest call came from IPv4");
        assert_eq!(time(a.last), Some(at("2026-12-01 11:15:00")));
        let mut hours: Vec<(Stamp, u64)> = a.hours().collect();
        hours.sort_unstable();
        assert_eq!(
            hours,
            [
                (t("2026-12-01 09:00:00"), 1),
                (t("2026-12-01 10:00:00"), 2),
                (t("2026-12-01 11:00:00"), 2)
            ]
        );
        assert_eq!(a.scopes().len(), 1);
    }
}

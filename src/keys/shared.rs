//! The verify cache shared by all threads: key id → entry, bounded, each
//! entry good for a fixed time.
//!
//! A plain sharded map, not a caching crate: behind the per-thread front
//! (`local`) it only sees each thread's first sight of a key, so a clever
//! eviction policy buys little, while every byte per entry counts against
//! the memory budget: an entry here costs about 100 bytes, a moka entry
//! about 390 (measured, 100k entries of the same value). Hand-written on
//! purpose: BENCHMARKS.md, "Where the memory went".

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::format::ID_LEN;

type KeyId = [u8; ID_LEN];

const SHARDS: usize = 16;

/// One shard: each entry with when it was stored, in nanoseconds since the
/// cache was made (8 bytes where an `Instant` takes 16).
type Shard<V> = HashMap<KeyId, (u64, V), foldhash::fast::RandomState>;

pub(super) struct SharedCache<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    per_shard: usize,
    ttl: Duration,
    /// What the stored times count from.
    base: Instant,
    /// Picks the shard, and the entries to drop when a shard is full. Keyed
    /// randomly per process: ids are chosen by callers.
    hasher: foldhash::fast::RandomState,
    evictions: AtomicU64,
}

impl<V: Clone> SharedCache<V> {
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        // Ids spread over the shards unevenly: with exactly `capacity` ids
        // in use, some shards get more than their share (at 100,000 ids,
        // ~6,250 ± 80 each). Each shard takes an eighth more than its share,
        // so a working set the size of the capacity is held whole instead
        // of churning; the whole cache may then hold up to 1.125 × capacity.
        let share = usize::try_from(capacity).unwrap_or(usize::MAX).div_ceil(SHARDS).max(1);
        let per_shard = share.saturating_add(share / 8);
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard,
            ttl,
            base: Instant::now(),
            hasher: Default::default(),
            evictions: AtomicU64::new(0),
        }
    }

    fn shard(&self, id: &KeyId) -> std::sync::MutexGuard<'_, Shard<V>> {
        let i = (self.hasher.hash_one(id) as usize) % SHARDS;
        self.shards[i].lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stamp(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    fn age(&self, stored: u64, now: Instant) -> Duration {
        Duration::from_nanos(self.stamp(now).saturating_sub(stored))
    }

    /// The entry and when it was stored, unless it is older than the TTL.
    pub fn get(&self, id: &KeyId, now: Instant) -> Option<(Instant, V)> {
        let mut shard = self.shard(id);
        let (at, value) = shard.get(id)?;
        if self.age(*at, now) < self.ttl {
            return Some((self.base + Duration::from_nanos(*at), value.clone()));
        }
        shard.remove(id);
        None
    }

    pub fn insert(&self, id: KeyId, at: Instant, value: V) {
        let stamp = self.stamp(at);
        let mut shard = self.shard(&id);
        if shard.len() >= self.per_shard && !shard.contains_key(&id) {
            let ttl = self.ttl;
            shard.retain(|_, (stored, _)| Duration::from_nanos(stamp.saturating_sub(*stored)) < ttl);
            if shard.len() >= self.per_shard {
                // Still full of live entries: drop about half, at random.
                let salt = self.evictions.fetch_add(1, Relaxed);
                shard.retain(|k, _| self.hasher.hash_one((k, salt)) & 1 == 0);
            }
        }
        shard.insert(id, (stamp, value));
    }

    pub fn remove(&self, id: &KeyId) {
        self.shard(id).remove(id);
    }

    pub fn clear(&self) {
        for shard in self.shards.iter() {
            shard.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }

    /// Entries held, expired ones not yet dropped included.
    pub fn len(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len() as u64)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_many_ids_as_the_capacity_are_all_held() {
        let c = SharedCache::new(100_000, Duration::from_secs(30));
        let t0 = Instant::now();
        for n in 0..100_000u64 {
            c.insert(id(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)), t0, ());
        }
        assert_eq!(c.len(), 100_000, "nothing evicted before the cache is full");
    }

    fn id(n: u64) -> KeyId {
        n.to_le_bytes()
    }

    #[test]
    fn an_entry_lives_for_the_ttl_only() {
        let c = SharedCache::new(10, Duration::from_secs(30));
        let t0 = Instant::now();
        c.insert(id(1), t0, "a");
        assert_eq!(c.get(&id(1), t0 + Duration::from_secs(29)), Some((t0, "a")));
        assert_eq!(c.get(&id(1), t0 + Duration::from_secs(30)), None);
        assert_eq!(c.len(), 0, "an expired entry is dropped when seen");
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let c = SharedCache::new(1_000, Duration::from_secs(30));
        let t0 = Instant::now();
        for n in 0..10_000 {
            c.insert(id(n), t0, n);
        }
        assert!(c.len() <= 1_125 + SHARDS as u64, "{}", c.len());
        assert_eq!(c.get(&id(9_999), t0), Some((t0, 9_999)), "the newest entry is kept");
    }

    #[test]
    fn removed_and_cleared_entries_are_gone() {
        let c = SharedCache::new(10, Duration::from_secs(30));
        let t0 = Instant::now();
        c.insert(id(1), t0, ());
        c.insert(id(2), t0, ());
        c.remove(&id(1));
        assert_eq!(c.get(&id(1), t0), None);
        c.clear();
        assert_eq!(c.get(&id(2), t0), None);
    }
}

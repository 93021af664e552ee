//! Last-used times, batched in memory.
//!
//! Writing `last_used_at` on every API call would put a database write on
//! the hot path (it cost Laravel Sanctum ~20% throughput and caused lock
//! contention). Instead each accepted call records the time here, and a
//! background task writes at most one update per key per interval, in one
//! transaction, and once more on shutdown.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::NaiveDateTime;
use diesel::Connection as _;

use super::format::ID_LEN;
use super::store;
use crate::db::{self, Pool};

/// A key id held by value: a pending entry is one small map slot, with no
/// string allocated for it (every key in use has one).
type Id = [u8; ID_LEN];

fn id_of(key_id: &str) -> Option<Id> {
    Id::try_from(key_id.as_bytes()).ok()
}

/// A time as microseconds since 1970 (UTC): 8 bytes a pending key where a
/// `NaiveDateTime` takes 12, which with every key in use is half a MiB.
type Stamp = i64;

fn stamp(at: NaiveDateTime) -> Stamp {
    at.and_utc().timestamp_micros()
}

fn time(at: Stamp) -> Option<NaiveDateTime> {
    chrono::DateTime::from_timestamp_micros(at).map(|t| t.naive_utc())
}

#[derive(Default)]
pub struct LastUsed {
    pending: Mutex<HashMap<Id, Stamp>>,
}

impl LastUsed {
    /// Records a use of the key with this id; ids are 8 ASCII characters,
    /// anything else is not a key id and is ignored.
    pub fn record(&self, key_id: &str, at: NaiveDateTime) {
        if let Some(id) = id_of(key_id) {
            self.record_id(id, stamp(at));
        }
    }

    fn record_id(&self, id: Id, at: Stamp) {
        let mut map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let t = map.entry(id).or_insert(at);
        if *t < at {
            *t = at;
        }
    }

    /// A use recorded here but not yet written, so pages can show it at once.
    pub fn pending(&self, key_id: &str) -> Option<NaiveDateTime> {
        let id = id_of(key_id)?;
        let at = *self.pending.lock().unwrap_or_else(|p| p.into_inner()).get(&id)?;
        time(at)
    }

    pub fn pending_count(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn forget(&self, key_id: &str) {
        if let Some(id) = id_of(key_id) {
            self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        }
    }

    /// Empties the map into a list. The map keeps its table: with every
    /// key in use it would otherwise be rebuilt after each flush, next to
    /// the batch being written.
    fn take(&self) -> Vec<(Id, Stamp)> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).drain().collect()
    }

    /// Writes every pending time in one transaction; on failure the batch is
    /// kept for the next try. Returns how many keys were written.
    pub async fn flush(&self, pool: &Pool) -> anyhow::Result<usize> {
        let batch = self.take();
        if batch.is_empty() {
            return Ok(0);
        }
        let n = batch.len();
        // Shared with the writer rather than copied: a batch can hold every
        // key, and is only needed again if the write fails.
        let batch = std::sync::Arc::new(batch);
        let work = batch.clone();
        let result = db::run(pool, move |conn| {
            conn.transaction::<_, diesel::result::Error, _>(|conn| {
                for (id, at) in work.iter() {
                    // Only ASCII ids and representable times are recorded.
                    if let (Ok(id), Some(at)) = (std::str::from_utf8(id), time(*at)) {
                        store::touch(conn, id, at)?;
                    }
                }
                Ok(())
            })?;
            Ok(())
        })
        .await;
        match result {
            Ok(()) => Ok(n),
            Err(e) => {
                for (id, at) in batch.iter() {
                    self.record_id(*id, *at);
                }
                Err(e)
            }
        }
    }
}

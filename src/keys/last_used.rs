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

use super::store;
use crate::db::{self, Pool};

#[derive(Default)]
pub struct LastUsed {
    pending: Mutex<HashMap<String, NaiveDateTime>>,
}

impl LastUsed {
    pub fn record(&self, key_id: &str, at: NaiveDateTime) {
        let mut map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(key_id) {
            Some(t) if *t >= at => {}
            Some(t) => *t = at,
            None => {
                map.insert(key_id.to_owned(), at);
            }
        }
    }

    /// A use recorded here but not yet written, so pages can show it at once.
    pub fn pending(&self, key_id: &str) -> Option<NaiveDateTime> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key_id)
            .copied()
    }

    pub fn pending_count(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn forget(&self, key_id: &str) {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(key_id);
    }

    fn take(&self) -> HashMap<String, NaiveDateTime> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
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
                    store::touch(conn, id, *at)?;
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
                    self.record(id, *at);
                }
                Err(e)
            }
        }
    }
}

//! The per-thread front of the verify cache.
//!
//! The shared cache (`shared`) is safe and bounded, but every hit on it
//! writes to memory that all workers share: its shard's lock, the entry's
//! reference count, and then the last-used map's lock. With two workers
//! serving one hot key, each of those writes moves a cache line between
//! cores on every call. This front keeps, per thread, a pointer to what the shared
//! cache holds, so a repeated key is answered with no shared write at all.
//!
//! It never decides on its own: an entry is used only while the verifier's
//! invalidation counter still has the value it had when the entry was
//! filled (any delete, revocation or key creation makes every thread go
//! back to the shared cache), and only until the shared entry's TTL ends.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use super::format::ID_LEN;
use super::verified::VerifiedKey;

/// Entries per thread, all verifiers together. When full, the table is
/// emptied: working sets larger than this are served by the shared cache.
/// 14,336 is what a table of 16,384 slots holds (7/8 of them) without
/// doubling.
const CAPACITY: usize = 14_336;

/// A cached key as this thread hands it out: the shared entry behind a
/// count of this thread's own, so that passing it to a request costs no
/// atomic operation (the extra allocation is made once per cache fill).
#[allow(clippy::redundant_allocation)]
pub(super) type LocalKey = Rc<Arc<VerifiedKey>>;

#[derive(Clone)]
pub(super) enum Entry {
    Known(LocalKey),
    Unknown,
}

struct Slot {
    epoch: u64,
    expires: Instant,
    entry: Entry,
}

/// Keyed per process (ids of unknown keys are chosen by callers), and far
/// cheaper than SipHash on 16 bytes: this is looked up on every call.
type Slots = HashMap<(u64, [u8; ID_LEN]), Slot, foldhash::fast::RandomState>;

thread_local! {
    static SLOTS: RefCell<Slots> = RefCell::new(Slots::default());
}

/// This thread's entry for a key id of verifier `owner`, if still valid at
/// invalidation count `epoch` and instant `now`.
pub(super) fn get(owner: u64, id: [u8; ID_LEN], epoch: u64, now: Instant) -> Option<Entry> {
    SLOTS.with(|slots| {
        let mut slots = slots.borrow_mut();
        let slot = slots.get(&(owner, id))?;
        if slot.epoch == epoch && now < slot.expires {
            return Some(slot.entry.clone());
        }
        slots.remove(&(owner, id));
        None
    })
}

pub(super) fn put(owner: u64, id: [u8; ID_LEN], epoch: u64, expires: Instant, entry: Entry) {
    SLOTS.with(|slots| {
        let mut slots = slots.borrow_mut();
        if slots.len() >= CAPACITY {
            slots.clear();
        }
        slots.insert((owner, id), Slot { epoch, expires, entry });
    });
}

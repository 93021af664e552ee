//! API keys (docs/keys.md). One room per responsibility:
//!
//! - `format`: the key's text (tag, id, secret, checksum) and its digest;
//! - `domain`: what a user types when creating one, checked;
//! - `manage`: create, list and delete a user's keys;
//! - `lifecycle`, `restrictions`: edits, rotation, allowlists, rate limits;
//! - `store`: the table;
//! - `verified`: the packed key every cache holds;
//! - `verifier` (with `local` and `shared`, its two caches): checking a
//!   presented key, and `last_used`, the batched record of its uses.

mod domain;
pub mod format;
pub mod last_used;
pub mod lifecycle;
mod local;
mod manage;
pub mod restrictions;
mod shared;
pub mod store;
mod verified;
mod verifier;

pub use domain::{parse_expiry, KeyName, Scopes};
pub use last_used::LastUsed;
pub use manage::{create, delete, find_own, list, CreateKeyError, Cursor, KeyPage, NewKeyRequest, PAGE_SIZE};
pub use store::KeyInfo;
pub use verified::{Restrictions, VerifiedKey};
pub use verifier::{CacheSettings, Checked, Lookup, Refusal, Verified, Verifier, VerifyError};

//! The verified key: who is calling, as every cache holds it. Packed into
//! one allocation for its texts and a few words beside (the memory figures
//! in BENCHMARKS.md rely on its size).

use std::sync::Arc;

use chrono::NaiveDateTime;

use super::format::KeyDigest;
use super::restrictions;

/// Who is calling: the outcome of a successful verification.
///
/// Cached for every key in use, so it is compact: the texts live in one
/// allocation, and the rest fits 72 bytes, so that with the reference
/// counts a cached key is one 96-byte block and one for its texts.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedKey {
    pub user_id: i64,
    /// When the key stops working, in microseconds since 1970 (UTC);
    /// `i64::MAX` for never. 8 bytes where an optional date takes 12.
    pub(super) expires: i64,
    /// The stored SHA-256 the presented key is checked against, held here
    /// rather than beside the key so that a cached key is one allocation.
    pub(super) digest: KeyDigest,
    /// The key's display prefix (`{tag}_{id}`, so the id is its last 8
    /// characters and is not stored again), the username, the key's name
    /// and its scopes (space-separated), one after the other.
    text: Box<str>,
    /// Where each of the first three texts ends in `text` (names and
    /// usernames are bounded far below 64 KiB).
    ends: [u16; 3],
    /// An address allowlist and a rate limit, for the few keys that have
    /// them (one pointer for the rest).
    restrictions: Option<Box<Restrictions>>,
}

/// What a restricted key checks on every call.
#[derive(Debug)]
pub struct Restrictions {
    pub allowed_ips: restrictions::AllowedIps,
    /// Shared by every cached copy of the key on this instance, and kept
    /// across cache reloads (`Verifier::limiter`).
    pub limiter: Option<Arc<restrictions::Limiter>>,
}

impl PartialEq for Restrictions {
    fn eq(&self, other: &Self) -> bool {
        self.allowed_ips == other.allowed_ips
            && self.limiter.as_ref().map(|l| l.per_minute()) == other.limiter.as_ref().map(|l| l.per_minute())
    }
}

impl Eq for Restrictions {}

impl Clone for Restrictions {
    fn clone(&self) -> Self {
        Self {
            allowed_ips: self.allowed_ips.clone(),
            limiter: self.limiter.clone(),
        }
    }
}

// The size the memory figures in BENCHMARKS.md rely on.
const _: () = assert!(std::mem::size_of::<VerifiedKey>() <= 80);

/// An expiry date as `VerifiedKey` holds it. Sub-microsecond parts are
/// dropped, so a key is never taken for valid past its stored expiry.
fn expiry_micros(at: Option<NaiveDateTime>) -> i64 {
    at.map_or(i64::MAX, |t| t.and_utc().timestamp_micros())
}

impl VerifiedKey {
    /// `prefix` is the key's `{tag}_{id}`, so it ends with `key_id` (which
    /// is then read from it, not stored twice).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key_id: &str,
        user_id: i64,
        username: &str,
        name: &str,
        prefix: &str,
        scopes: &[&str],
        expires_at: Option<NaiveDateTime>,
        digest: KeyDigest,
    ) -> Self {
        // The prefix ends with the id (`{tag}_{id}`, as every key's does):
        // the id is not stored again.
        debug_assert!(prefix.ends_with(key_id) && key_id.len() == super::format::ID_LEN);
        let mut text = String::with_capacity(
            prefix.len() + username.len() + name.len() + scopes.iter().map(|s| s.len() + 1).sum::<usize>(),
        );
        let mut ends = [0u16; 3];
        for (end, part) in ends.iter_mut().zip([prefix, username, name]) {
            text.push_str(part);
            *end = u16::try_from(text.len()).unwrap_or(u16::MAX);
        }
        // Empty scopes are dropped, so the text is the scopes joined by
        // single spaces (`scopes_joined`).
        for (i, scope) in scopes.iter().filter(|s| !s.is_empty()).enumerate() {
            if i > 0 {
                text.push(' ');
            }
            text.push_str(scope);
        }
        Self {
            user_id,
            expires: expiry_micros(expires_at),
            digest,
            text: text.into_boxed_str(),
            ends,
            restrictions: None,
        }
    }

    /// The same key with an allowlist and a rate limit.
    pub fn with_restrictions(mut self, r: Restrictions) -> Self {
        if !r.allowed_ips.is_empty() || r.limiter.is_some() {
            self.restrictions = Some(Box::new(r));
        }
        self
    }

    pub fn restrictions(&self) -> Option<&Restrictions> {
        self.restrictions.as_deref()
    }

    /// When the key stops working, if ever: its expiry, or the end of its
    /// grace period once rotated, whichever is sooner.
    pub fn expires_at(&self) -> Option<NaiveDateTime> {
        if self.expires == i64::MAX {
            return None;
        }
        chrono::DateTime::from_timestamp_micros(self.expires).map(|t| t.naive_utc())
    }

    /// Whether the key no longer works at `now`.
    pub fn is_expired(&self, now: NaiveDateTime) -> bool {
        now.and_utc().timestamp_micros() >= self.expires
    }

    fn part(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let end = self.ends.get(i).map_or(self.text.len(), |&e| e as usize);
        self.text.get(start..end).unwrap_or_default()
    }

    /// The key's id: the last 8 characters of its prefix.
    pub fn key_id(&self) -> &str {
        let p = self.prefix();
        p.get(p.len().saturating_sub(super::format::ID_LEN)..)
            .unwrap_or_default()
    }
    /// The owner's username.
    pub fn username(&self) -> &str {
        self.part(1)
    }
    /// The name its owner gave the key.
    pub fn name(&self) -> &str {
        self.part(2)
    }
    /// `{tag}_{id}`: what the portal shows of the key.
    pub fn prefix(&self) -> &str {
        self.part(0)
    }
    /// The key's scopes, in the configured order.
    pub fn scopes(&self) -> impl Iterator<Item = &str> + Clone + '_ {
        self.part(3).split(' ').filter(|s| !s.is_empty())
    }
    /// The key's scopes separated by single spaces, as stored.
    pub fn scopes_joined(&self) -> &str {
        self.part(3)
    }
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }
}

impl std::fmt::Debug for VerifiedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedKey")
            .field("key_id", &self.key_id())
            .field("user_id", &self.user_id)
            .field("username", &self.username())
            .field("name", &self.name())
            .field("prefix", &self.prefix())
            .field("scopes", &self.scopes().collect::<Vec<_>>())
            .field("expires_at", &self.expires_at())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn a_verified_key_gives_back_each_of_its_texts() {
        let k = VerifiedKey::new(
            "AbCd1234",
            7,
            "alice",
            "ci – prod",
            "kw_AbCd1234",
            &["keys:read", "read"],
            None,
            KeyDigest([0; 32]),
        );
        assert_eq!(
            (k.key_id(), k.username(), k.name(), k.prefix()),
            ("AbCd1234", "alice", "ci – prod", "kw_AbCd1234")
        );
        assert!(k.scopes().eq(["keys:read", "read"]));
        assert_eq!(k.scopes_joined(), "keys:read read");
        assert!(k.has_scope("read") && !k.has_scope("write") && !k.has_scope(""));
        let none = VerifiedKey::new(
            "AbCd1234",
            7,
            "alice",
            "n",
            "kw_AbCd1234",
            &[],
            None,
            KeyDigest([0; 32]),
        );
        assert_eq!(none.scopes().count(), 0);
        assert_eq!(none.expires_at(), None);
        let at = chrono::NaiveDate::from_ymd_opt(2031, 2, 3)
            .and_then(|d| d.and_hms_micro_opt(4, 5, 6, 789_012))
            .unwrap();
        let dated = VerifiedKey::new(
            "AbCd1234",
            7,
            "alice",
            "n",
            "kw_AbCd1234",
            &[],
            Some(at),
            KeyDigest([0; 32]),
        );
        assert_eq!(dated.expires_at(), Some(at));
        assert!(!dated.is_expired(at - Duration::microseconds(1)) && dated.is_expired(at));
        assert!(format!("{k:?}").contains("\"alice\""));
    }
}

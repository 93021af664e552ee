//! API keys: the format, the store, verification and last-used batching.

pub mod format;
pub mod last_used;
pub mod store;

use std::sync::Arc;

use chrono::{Duration, NaiveDateTime};

use crate::db::{self, Pool};
use format::{GeneratedKey, KeyTag};
pub use last_used::LastUsed;
pub use store::KeyInfo;

/// A key's name: 1-64 characters after trimming, no control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyName(String);

impl KeyName {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let s = input.trim();
        if s.is_empty() {
            return Err("Give the key a name, like \"production server\".");
        }
        if s.chars().count() > 64 {
            return Err("Key names are at most 64 characters long.");
        }
        if s.chars().any(char::is_control) {
            return Err("Key names cannot contain control characters.");
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The scopes chosen for a key, each one of the configured scopes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Scopes(Vec<String>);

impl Scopes {
    pub fn parse(chosen: &[String], allowed: &[String]) -> Result<Self, &'static str> {
        let mut out: Vec<String> = Vec::new();
        for c in chosen {
            if !allowed.contains(c) {
                return Err("Choose scopes from the list.");
            }
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
        // Keep the configured order, whatever order the form sent.
        out.sort_by_key(|s| allowed.iter().position(|a| a == s));
        Ok(Self(out))
    }
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

/// Days until expiry: empty means never, else 1-3650.
pub fn parse_expiry(input: &str) -> Result<Option<u32>, &'static str> {
    let s = input.trim();
    if s.is_empty() {
        return Ok(None);
    }
    match s.parse::<u32>() {
        Ok(d) if (1..=3650).contains(&d) => Ok(Some(d)),
        _ => Err("Enter a whole number of days from 1 to 3650, or leave it empty for no expiry."),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CreateKeyError {
    #[error("name taken")]
    NameTaken,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

pub struct NewKeyRequest {
    pub user_id: i64,
    pub name: KeyName,
    pub scopes: Scopes,
    pub expires_in_days: Option<u32>,
}

/// Creates a key; the returned `GeneratedKey` holds the only copy of the
/// full key, to be shown once.
pub async fn create(pool: &Pool, tag: &KeyTag, req: NewKeyRequest) -> Result<(GeneratedKey, KeyInfo), CreateKeyError> {
    let generated = format::generate(tag);
    let now = crate::time::now();
    let info = KeyInfo {
        id: generated.id.clone(),
        user_id: req.user_id,
        name: req.name.as_str().to_owned(),
        prefix: generated.display_prefix.clone(),
        scopes: req.scopes.as_slice().join(" "),
        created_at: now,
        last_used_at: None,
        expires_at: req.expires_in_days.map(|d| now + Duration::days(i64::from(d))),
    };
    let digest = generated.digest.as_bytes().to_vec();
    let row = info.clone();
    let outcome = db::run(pool, move |conn| {
        if store::name_taken(conn, row.user_id, &row.name)? {
            return Ok(false);
        }
        let new = store::NewKey {
            id: &row.id,
            user_id: row.user_id,
            name: &row.name,
            prefix: &row.prefix,
            digest: &digest,
            scopes: &row.scopes,
            created_at: row.created_at,
            expires_at: row.expires_at,
        };
        match store::insert(conn, &new) {
            Ok(_) => Ok(true),
            Err(e) if db::is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    if outcome {
        Ok((generated, info))
    } else {
        Err(CreateKeyError::NameTaken)
    }
}

/// The user's keys, newest first, with uses not yet flushed merged in.
pub async fn list(pool: &Pool, last_used: &LastUsed, user_id: i64) -> anyhow::Result<Vec<KeyInfo>> {
    let mut keys = db::run(pool, move |conn| Ok(store::list_for_user(conn, user_id)?)).await?;
    for k in &mut keys {
        if let Some(p) = last_used.pending(&k.id) {
            if k.last_used_at.is_none_or(|t| t < p) {
                k.last_used_at = Some(p);
            }
        }
    }
    Ok(keys)
}

/// Revokes one of the user's keys. Returns false when they have no such key.
/// Once this returns, the key is refused.
pub async fn delete(pool: &Pool, verifier: &Verifier, user_id: i64, key_id: &str) -> anyhow::Result<bool> {
    if !format::is_key_id(key_id) {
        return Ok(false);
    }
    let id = key_id.to_owned();
    let deleted = db::run(pool, move |conn| {
        use diesel::Connection as _;
        // The NOTIFY rides in the deleting transaction: other instances hear
        // of the revocation exactly when it commits (PostgreSQL only).
        Ok(conn.transaction::<_, diesel::result::Error, _>(|conn| {
            let deleted = store::delete_for_user(conn, user_id, &id)?;
            if deleted {
                db::revocation::notify_revoked(conn, &id)?;
            }
            Ok(deleted)
        })?)
    })
    .await?;
    if deleted {
        verifier.forget(key_id);
    }
    Ok(deleted)
}

/// Who is calling: the outcome of a successful verification.
#[derive(Clone, Debug)]
pub struct VerifiedKey {
    pub key_id: String,
    pub user_id: i64,
    pub username: String,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<NaiveDateTime>,
}

impl VerifiedKey {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Malformed, bad checksum, unknown, expired or deleted: callers are
    /// not told which.
    #[error("invalid key")]
    Invalid,
    #[error("key store unavailable")]
    Unavailable(#[source] anyhow::Error),
}

/// Checks presented keys against the store and records their use.
pub struct Verifier {
    pool: Pool,
    last_used: Arc<LastUsed>,
}

impl Verifier {
    pub fn new(pool: Pool, last_used: Arc<LastUsed>) -> Self {
        Self { pool, last_used }
    }

    pub fn last_used(&self) -> &Arc<LastUsed> {
        &self.last_used
    }

    /// Writes pending last-used times now (also what shutdown calls).
    pub async fn flush_last_used(&self) -> anyhow::Result<usize> {
        self.last_used.flush(&self.pool).await
    }

    /// Flushes pending last-used times every `every` on the current actix
    /// runtime, for services that embed the guard.
    pub fn spawn_flusher(self: &Arc<Self>, every: std::time::Duration) {
        let verifier = self.clone();
        actix_web::rt::spawn(async move {
            let mut tick = actix_web::rt::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = verifier.flush_last_used().await {
                    tracing::warn!(error = ?e, "last-used flush failed; will retry");
                }
            }
        });
    }

    pub async fn verify(&self, presented: &str) -> Result<VerifiedKey, VerifyError> {
        // Shape and checksum first: typos and garbage never reach the database.
        let parsed = format::parse(presented).map_err(|_| VerifyError::Invalid)?;
        let id = parsed.id.clone();
        let found = db::run(&self.pool, move |conn| Ok(store::find_for_verify(conn, &id)?))
            .await
            .map_err(VerifyError::Unavailable)?;
        let Some((info, digest, username)) = found else {
            return Err(VerifyError::Invalid);
        };
        let now = crate::time::now();
        if !parsed.digest.matches(&digest) || info.prefix != parsed.display_prefix || info.is_expired(now) {
            return Err(VerifyError::Invalid);
        }
        self.last_used.record(&info.id, now);
        Ok(VerifiedKey {
            scopes: info.scope_list(),
            key_id: info.id,
            user_id: info.user_id,
            username,
            name: info.name,
            prefix: info.prefix,
            expires_at: info.expires_at,
        })
    }

    /// Drops anything this instance remembers about a key (called on delete).
    pub fn forget(&self, key_id: &str) {
        self.last_used.forget(key_id);
    }

    /// Drops everything this instance remembers about any key: called when
    /// revocations from other instances may have been missed.
    pub fn forget_all(&self) {
        // Nothing is cached beyond pending last-used times, which stay valid.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_are_trimmed_and_bounded() {
        assert_eq!(KeyName::parse("  ci ").unwrap().as_str(), "ci");
        assert!(KeyName::parse("   ").is_err());
        assert!(KeyName::parse(&"n".repeat(65)).is_err());
        assert!(KeyName::parse("a\nb").is_err());
    }

    #[test]
    fn scopes_must_come_from_the_allowed_list() {
        let allowed: Vec<String> = ["keys:read", "read", "write"].iter().map(|s| s.to_string()).collect();
        let s = Scopes::parse(&["write".into(), "keys:read".into(), "write".into()], &allowed).unwrap();
        assert_eq!(s.as_slice(), ["keys:read", "write"]);
        assert!(Scopes::parse(&["admin".into()], &allowed).is_err());
    }

    #[test]
    fn expiry_is_empty_or_a_day_count() {
        assert_eq!(parse_expiry(""), Ok(None));
        assert_eq!(parse_expiry("30"), Ok(Some(30)));
        for bad in ["0", "-1", "abc", "3651", "1.5"] {
            assert!(parse_expiry(bad).is_err());
        }
    }
}

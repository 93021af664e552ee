//! Creating, listing and deleting a user's keys: what the portal and the
//! JSON API do with them (docs/keys.md). Verification is `verifier`'s.

use chrono::{Duration, NaiveDateTime};

use super::domain::{KeyName, Scopes};
use super::format::{self, GeneratedKey, KeyTag};
use super::last_used::LastUsed;
use super::restrictions;
use super::store::{self, KeyInfo};
use super::verifier::Verifier;
use crate::db::{self, Pool};

#[derive(Debug, thiserror::Error)]
pub enum CreateKeyError {
    #[error("name taken")]
    NameTaken,
    /// The account holds the most keys it may (`KEYWARD_MAX_KEYS_PER_USER`).
    #[error("too many keys")]
    TooMany(u32),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

pub struct NewKeyRequest {
    pub user_id: i64,
    /// The most keys the account may hold, this one included.
    pub max_keys: u32,
    pub name: KeyName,
    pub scopes: Scopes,
    pub expires_in_days: Option<u32>,
    pub allowed_ips: restrictions::AllowedIps,
    pub rate_limit_per_minute: Option<u32>,
}

/// Creates a key; the returned `GeneratedKey` holds the only copy of the
/// full key, to be shown once.
pub async fn create(
    pool: &Pool,
    verifier: &Verifier,
    tag: &KeyTag,
    req: NewKeyRequest,
) -> Result<(GeneratedKey, KeyInfo), CreateKeyError> {
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
        retires_at: None,
        last_used_address: None,
        allowed_ips: req.allowed_ips.to_text(),
        rate_limit_per_minute: req.rate_limit_per_minute.map(|n| n as i32),
    };
    let digest = generated.digest.as_bytes().to_vec();
    let row = info.clone();
    let max_keys = req.max_keys;
    let outcome = db::run(pool, move |conn| {
        if store::count_for_user(conn, row.user_id)? >= i64::from(max_keys) {
            return Ok(Err(CreateKeyError::TooMany(max_keys)));
        }
        if store::name_taken(conn, row.user_id, &row.name)? {
            return Ok(Err(CreateKeyError::NameTaken));
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
            allowed_ips: &row.allowed_ips,
            rate_limit_per_minute: row.rate_limit_per_minute,
        };
        match store::insert(conn, &new) {
            Ok(_) => Ok(Ok(())),
            Err(e) if db::is_unique_violation(&e) => Ok(Err(CreateKeyError::NameTaken)),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    outcome?;
    verifier.key_created(&info.id);
    Ok((generated, info))
}

/// Keys on one page of `/keys` and `/api/v1/keys`.
pub const PAGE_SIZE: usize = 50;

/// Where a page of keys starts: after the key created at `created` with
/// `id` (keys are listed newest first). Written `{micros}_{id}` in URLs;
/// it names no row, so it stays valid when that key is deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    created: NaiveDateTime,
    id: String,
}

impl Cursor {
    fn after(k: &KeyInfo) -> Self {
        Self {
            created: k.created_at,
            id: k.id.clone(),
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        let (micros, id) = s.split_once('_')?;
        let created = chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)?.naive_utc();
        format::is_key_id(id).then(|| Self {
            created,
            id: id.to_owned(),
        })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.created.and_utc().timestamp_micros(), self.id)
    }
}

/// One page of a user's keys, and how many they have in all.
pub struct KeyPage {
    pub keys: Vec<KeyInfo>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
    pub total: i64,
}

/// A page of the user's keys, newest first, with uses not yet flushed
/// merged in.
pub async fn list(pool: &Pool, last_used: &LastUsed, user_id: i64, after: Option<Cursor>) -> anyhow::Result<KeyPage> {
    let (mut keys, total) = db::run(pool, move |conn| {
        let after = after.as_ref().map(|c| (c.created, c.id.as_str()));
        let keys = store::page_for_user(conn, user_id, after, PAGE_SIZE as i64 + 1)?;
        Ok((keys, store::count_for_user(conn, user_id)?))
    })
    .await?;
    let next = if keys.len() > PAGE_SIZE {
        keys.truncate(PAGE_SIZE);
        keys.last().map(Cursor::after)
    } else {
        None
    };
    for k in &mut keys {
        merge_pending(k, last_used);
    }
    Ok(KeyPage { keys, next, total })
}

fn merge_pending(k: &mut KeyInfo, last_used: &LastUsed) {
    if let Some((p, address)) = last_used.pending_use(&k.id) {
        if k.last_used_at.is_none_or(|t| t < p) {
            k.last_used_at = Some(p);
            if let Some(a) = address {
                k.last_used_address = Some(a.to_string());
            }
        }
    }
}

/// One of the user's keys (one query); `None` for anyone else's.
pub async fn find_own(
    pool: &Pool,
    last_used: &LastUsed,
    user_id: i64,
    key_id: &str,
) -> anyhow::Result<Option<KeyInfo>> {
    if !format::is_key_id(key_id) {
        return Ok(None);
    }
    let id = key_id.to_owned();
    let mut key = db::run(pool, move |conn| Ok(store::find_for_user(conn, user_id, &id)?)).await?;
    if let Some(k) = &mut key {
        merge_pending(k, last_used);
    }
    Ok(key)
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
        verifier.forget_deleted(key_id);
    }
    Ok(deleted)
}

//! A key after its creation: editing, rotation with a grace period,
//! retirement, and what its owner sees of its use (docs/keys.md).
//!
//! Every change that affects verification forgets the key here before the
//! request returns and announces it to other instances in the same
//! transaction (`db::revocation`), exactly as a delete does.

use chrono::{Duration, NaiveDateTime};
use diesel::Connection as _;

use super::format::{self, GeneratedKey, KeyTag};
use super::restrictions::AllowedIps;
use super::store::{self, KeyEdit, KeyInfo};
use super::{KeyName, LastUsed, Scopes, Verifier};
use crate::db::{self, Pool};

/// The longest grace period a rotation may give the old key: a week.
pub const MAX_GRACE_MINUTES: u32 = 10_080;

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// No such key of this user (or, for a rotation, one already retiring).
    #[error("no such key")]
    NotFound,
    #[error("name taken")]
    NameTaken,
    /// Too many keys, counting those still retiring.
    #[error("too many keys")]
    TooMany,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<diesel::result::Error> for ChangeError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Unexpected(e.into())
    }
}

/// What an owner may change on a key.
pub struct Edit {
    pub name: KeyName,
    pub scopes: Scopes,
    pub allowed_ips: AllowedIps,
    pub rate_limit_per_minute: Option<u32>,
}

/// `grace_minutes` from a form: 0 to a week.
pub fn parse_grace(input: &str) -> Result<u32, &'static str> {
    match input.trim().parse::<u32>() {
        Ok(n) if n <= MAX_GRACE_MINUTES => Ok(n),
        _ => Err("Enter a grace period from 0 to 10080 minutes (a week)."),
    }
}

/// Edits an active key of the user. Takes effect on every instance when it
/// returns.
pub async fn edit(
    pool: &Pool,
    verifier: &Verifier,
    user_id: i64,
    key_id: &str,
    edit: Edit,
) -> Result<KeyInfo, ChangeError> {
    if !format::is_key_id(key_id) {
        return Err(ChangeError::NotFound);
    }
    let id = key_id.to_owned();
    let updated = db::run(pool, move |conn| {
        let result = conn.transaction::<_, ChangeError, _>(|conn| {
            let Some(current) = store::find_for_user(conn, user_id, &id)? else {
                return Err(ChangeError::NotFound);
            };
            if current.retires_at.is_some() {
                return Err(ChangeError::NotFound);
            }
            if current.name != edit.name.as_str() && store::name_taken(conn, user_id, edit.name.as_str())? {
                return Err(ChangeError::NameTaken);
            }
            let scopes = edit.scopes.as_slice().join(" ");
            let allowed = edit.allowed_ips.to_text();
            let changes = KeyEdit {
                name: edit.name.as_str(),
                scopes: &scopes,
                allowed_ips: &allowed,
                rate_limit_per_minute: edit.rate_limit_per_minute.map(|n| n as i32),
            };
            match store::update_for_user(conn, user_id, &id, &changes) {
                Ok(true) => {}
                Ok(false) => return Err(ChangeError::NotFound),
                Err(e) if db::is_unique_violation(&e) => return Err(ChangeError::NameTaken),
                Err(e) => return Err(e.into()),
            }
            db::revocation::notify_revoked(conn, &id)?;
            store::find_for_user(conn, user_id, &id)?.ok_or(ChangeError::NotFound)
        });
        Ok(result)
    })
    .await??;
    verifier.forget(key_id);
    Ok(updated)
}

/// What a rotation asks for.
pub struct Rotation {
    /// How long the old key keeps working (0 to `MAX_GRACE_MINUTES`).
    pub grace_minutes: u32,
    /// The new key's lifetime; `None` for never.
    pub expires_in_days: Option<u32>,
    /// The account's cap on keys (`KEYWARD_MAX_KEYS_PER_USER`).
    pub max_keys: u32,
}

/// Rotates an active key: a new key with the old one's name, scopes and
/// restrictions, and the old one retiring after `grace_minutes` (at once
/// for 0). Returns the new key (shown once), its row and the old row.
pub async fn rotate(
    pool: &Pool,
    verifier: &Verifier,
    tag: &KeyTag,
    user_id: i64,
    key_id: &str,
    rotation: Rotation,
) -> Result<(GeneratedKey, KeyInfo, KeyInfo), ChangeError> {
    let Rotation {
        grace_minutes,
        expires_in_days,
        max_keys,
    } = rotation;
    if !format::is_key_id(key_id) {
        return Err(ChangeError::NotFound);
    }
    let generated = format::generate(tag);
    let now = verifier.now();
    let id = key_id.to_owned();
    let new_id = generated.id.clone();
    let new_prefix = generated.display_prefix.clone();
    let digest = generated.digest.as_bytes().to_vec();
    let (new, old) = db::run(pool, move |conn| {
        let result = conn.transaction::<_, ChangeError, _>(|conn| {
            let Some(old) = store::find_for_user(conn, user_id, &id)? else {
                return Err(ChangeError::NotFound);
            };
            if old.retires_at.is_some() {
                return Err(ChangeError::NotFound);
            }
            // Retiring keys still work: a chain of rotations with long
            // grace periods must not get round the cap on keys.
            if store::count_for_user(conn, user_id)? >= 2 * i64::from(max_keys) {
                return Err(ChangeError::TooMany);
            }
            let retires = now + Duration::minutes(i64::from(grace_minutes));
            if !store::set_retires_at(conn, user_id, &id, retires, true)? {
                return Err(ChangeError::NotFound);
            }
            let row = store::NewKey {
                id: &new_id,
                user_id,
                name: &old.name,
                prefix: &new_prefix,
                digest: &digest,
                scopes: &old.scopes,
                created_at: now,
                expires_at: expires_in_days.map(|d| now + Duration::days(i64::from(d))),
                allowed_ips: &old.allowed_ips,
                rate_limit_per_minute: old.rate_limit_per_minute,
            };
            store::insert(conn, &row)?;
            db::revocation::notify_revoked(conn, &id)?;
            let new = store::find_for_user(conn, user_id, &new_id)?.ok_or(ChangeError::NotFound)?;
            let old = store::find_for_user(conn, user_id, &id)?.ok_or(ChangeError::NotFound)?;
            Ok((new, old))
        });
        Ok(result)
    })
    .await??;
    verifier.forget(key_id);
    verifier.key_created(&new.id);
    Ok((generated, new, old))
}

/// Ends a retiring key's grace period now. False when the user has no
/// retiring key with this id.
pub async fn retire_now(
    pool: &Pool,
    verifier: &Verifier,
    user_id: i64,
    key_id: &str,
) -> anyhow::Result<Option<KeyInfo>> {
    if !format::is_key_id(key_id) {
        return Ok(None);
    }
    let now = verifier.now();
    let id = key_id.to_owned();
    let retired = db::run(pool, move |conn| {
        Ok(conn.transaction::<_, diesel::result::Error, _>(|conn| {
            if !store::set_retires_at(conn, user_id, &id, now, false)? {
                return Ok(None);
            }
            db::revocation::notify_revoked(conn, &id)?;
            store::find_for_user(conn, user_id, &id)
        })?)
    })
    .await?;
    if retired.is_some() {
        verifier.forget(key_id);
    }
    Ok(retired)
}

/// Removes keys whose grace period is over (they are already refused);
/// returns how many. Run by housekeeping.
pub async fn remove_retired(pool: &Pool, verifier: &Verifier) -> anyhow::Result<usize> {
    let now = verifier.now();
    let removed = db::run(pool, move |conn| {
        Ok(conn.transaction::<_, diesel::result::Error, _>(|conn| {
            let retired = store::retired_before(conn, now)?;
            for (id, user_id) in &retired {
                store::delete_for_user(conn, *user_id, id)?;
                db::revocation::notify_revoked(conn, id)?;
            }
            Ok(retired)
        })?)
    })
    .await?;
    for (id, _) in &removed {
        verifier.forget_deleted(id);
    }
    Ok(removed.len())
}

/// What the key page shows of a key's use.
pub struct Usage {
    /// Accepted calls per hour, the last 168 hours, oldest first.
    pub hourly: Vec<(NaiveDateTime, u64)>,
    /// Scopes the key was checked for in the last 30 days.
    pub scopes_used: Vec<String>,
}

/// A key's use over the last week (calls) and month (scopes), with what is
/// recorded but not yet written.
pub async fn usage(pool: &Pool, last_used: &LastUsed, key_id: &str, now: NaiveDateTime) -> anyhow::Result<Usage> {
    let seconds = now.and_utc().timestamp();
    let this_hour =
        chrono::DateTime::from_timestamp(seconds - seconds.rem_euclid(3600), 0).map_or(now, |t| t.naive_utc());
    let first = this_hour - Duration::hours(167);
    let month = now - Duration::days(30);
    let id = key_id.to_owned();
    let (stored, scopes_used) = db::run(pool, move |conn| {
        Ok((
            store::calls_since(conn, &id, first)?,
            store::scopes_used_since(conn, &id, month)?,
        ))
    })
    .await?;
    let mut hourly: Vec<(NaiveDateTime, u64)> = (0..168).map(|h| (first + Duration::hours(h), 0)).collect();
    let mut add = |hour: NaiveDateTime, n: u64| {
        let index = (hour - first).num_hours();
        if let Some(slot) = usize::try_from(index).ok().and_then(|i| hourly.get_mut(i)) {
            slot.1 += n;
        }
    };
    for (hour, n) in stored {
        add(hour, u64::try_from(n).unwrap_or(0));
    }
    for (hour, n) in last_used.pending_calls(key_id) {
        add(hour, n);
    }
    Ok(Usage { hourly, scopes_used })
}

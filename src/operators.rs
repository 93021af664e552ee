//! What operators do (docs/operators.md): admins, disabling and enabling
//! accounts, revoking a user's keys, the key-lifetime policy, and revoking
//! keys found leaked. Every change that affects verification is announced
//! to the other instances in its transaction and forgotten here before
//! the caller answers.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::accounts::users::{self, User};
use crate::db::schema::{api_keys, key_policy, user_sessions, users as users_t};
use crate::db::{self, DbConnection, Pool};
use crate::keys::{format, store, Verifier};

/// Makes `username` an admin, or not.
pub async fn set_admin(pool: &Pool, username: &str, admin: bool) -> anyhow::Result<bool> {
    let name = username.trim().to_ascii_lowercase();
    db::run(pool, move |conn| {
        Ok(diesel::update(users_t::table.filter(users_t::username.eq(&name)))
            .set(users_t::is_admin.eq(admin))
            .execute(conn)?
            > 0)
    })
    .await
}

fn key_ids(conn: &mut DbConnection, user_id: i64) -> QueryResult<Vec<String>> {
    api_keys::table
        .filter(api_keys::user_id.eq(user_id))
        .select(api_keys::id)
        .load(conn)
}

/// Disables (or enables) an account: a disabled user cannot log in, their
/// sessions end and their keys are refused, at once and everywhere.
/// Returns false when there is no such user.
pub async fn set_disabled(pool: &Pool, verifier: &Verifier, username: &str, disabled: bool) -> anyhow::Result<bool> {
    let name = username.trim().to_ascii_lowercase();
    let ids = db::run(pool, move |conn| {
        Ok(conn.transaction::<_, diesel::result::Error, _>(|conn| {
            let Some(user) = users::find_by_username(conn, &name)? else {
                return Ok(None);
            };
            let at = disabled.then(crate::time::now);
            diesel::update(users_t::table.find(user.id))
                .set(users_t::disabled_at.eq(at))
                .execute(conn)?;
            if disabled {
                diesel::delete(user_sessions::table.filter(user_sessions::user_id.eq(user.id))).execute(conn)?;
            }
            let ids = key_ids(conn, user.id)?;
            for id in &ids {
                db::revocation::notify_revoked(conn, id)?;
            }
            Ok(Some(ids))
        })?)
    })
    .await?;
    let Some(ids) = ids else { return Ok(false) };
    for id in &ids {
        verifier.forget(id);
    }
    Ok(true)
}

/// Deletes every key of a user; returns how many.
pub async fn revoke_all_keys(pool: &Pool, verifier: &Verifier, user_id: i64) -> anyhow::Result<usize> {
    let ids = db::run(pool, move |conn| {
        Ok(conn.transaction::<_, diesel::result::Error, _>(|conn| {
            let ids = key_ids(conn, user_id)?;
            for id in &ids {
                store::delete_for_user(conn, user_id, id)?;
                db::revocation::notify_revoked(conn, id)?;
            }
            Ok(ids)
        })?)
    })
    .await?;
    for id in &ids {
        verifier.forget_deleted(id);
    }
    Ok(ids.len())
}

/// A key found somewhere it should not be, and revoked.
pub struct Revoked {
    pub owner: User,
    pub name: String,
    pub prefix: String,
}

/// Revokes each presented key that is a live key (its digest matches):
/// one transaction for the whole batch. Anything else is ignored. Returns
/// the revoked keys (for mails) and, per presented token, whether it was a
/// live key.
pub async fn revoke_presented(
    pool: &Pool,
    verifier: &Verifier,
    tokens: Vec<String>,
) -> anyhow::Result<(Vec<Revoked>, Vec<bool>)> {
    let (revoked, live) = db::run(pool, move |conn| {
        Ok(conn.transaction::<_, diesel::result::Error, _>(|conn| {
            let mut revoked = Vec::new();
            let mut live = Vec::with_capacity(tokens.len());
            for token in &tokens {
                let Ok(parts) = format::parse_parts(token) else {
                    live.push(false);
                    continue;
                };
                let found = api_keys::table
                    .inner_join(users_t::table)
                    .filter(api_keys::id.eq(parts.id))
                    .select((api_keys::digest, api_keys::name, api_keys::prefix, User::as_select()))
                    .first::<(Vec<u8>, String, String, User)>(conn)
                    .optional()?;
                match found {
                    Some((digest, name, prefix, owner)) if parts.digest.matches(&digest) => {
                        store::delete_for_user(conn, owner.id, parts.id)?;
                        db::revocation::notify_revoked(conn, parts.id)?;
                        revoked.push((parts.id.to_owned(), Revoked { owner, name, prefix }));
                        live.push(true);
                    }
                    _ => live.push(false),
                }
            }
            Ok((revoked, live))
        })?)
    })
    .await?;
    let mut out = Vec::with_capacity(revoked.len());
    for (id, r) in revoked {
        verifier.forget_deleted(&id);
        out.push(r);
    }
    Ok((out, live))
}

/// Revokes the key with this display prefix (`kw_AbCdEfGh`), whoever owns it.
pub async fn revoke_by_prefix(pool: &Pool, verifier: &Verifier, prefix: &str) -> anyhow::Result<bool> {
    let Some((_, id)) = prefix.rsplit_once('_') else {
        return Ok(false);
    };
    if !format::is_key_id(id) {
        return Ok(false);
    }
    let (id, prefix) = (id.to_owned(), prefix.to_owned());
    let gone = id.clone();
    let deleted = db::run(pool, move |conn| {
        Ok(conn.transaction::<_, diesel::result::Error, _>(|conn| {
            let owner: Option<i64> = api_keys::table
                .filter(api_keys::id.eq(&id))
                .filter(api_keys::prefix.eq(&prefix))
                .select(api_keys::user_id)
                .first(conn)
                .optional()?;
            let Some(owner) = owner else { return Ok(false) };
            store::delete_for_user(conn, owner, &id)?;
            db::revocation::notify_revoked(conn, &id)?;
            Ok(true)
        })?)
    })
    .await?;
    if deleted {
        verifier.forget_deleted(&gone);
    }
    Ok(deleted)
}

/// The longest lifetime new and rotated keys may have, in days.
pub async fn max_key_lifetime_days(pool: &Pool) -> anyhow::Result<Option<u32>> {
    db::run(pool, |conn| {
        let v: Option<Option<i32>> = key_policy::table
            .find(1_i64)
            .select(key_policy::max_key_lifetime_days)
            .first(conn)
            .optional()?;
        Ok(v.flatten().and_then(|d| u32::try_from(d).ok()))
    })
    .await
}

pub async fn set_max_key_lifetime_days(pool: &Pool, days: Option<u32>) -> anyhow::Result<()> {
    db::run(pool, move |conn| {
        let value = days.map(|d| d as i32);
        if diesel::update(key_policy::table.find(1_i64))
            .set(key_policy::max_key_lifetime_days.eq(value))
            .execute(conn)?
            == 0
        {
            diesel::insert_into(key_policy::table)
                .values((key_policy::id.eq(1_i64), key_policy::max_key_lifetime_days.eq(value)))
                .execute(conn)?;
        }
        Ok(())
    })
    .await
}

/// One row of `/admin/users`.
pub struct UserSummary {
    pub user: User,
    pub keys: i64,
    pub last_login: Option<NaiveDateTime>,
}

/// Users whose name contains `search`, by name, `limit` from `offset`.
pub async fn users(pool: &Pool, search: String, offset: i64, limit: i64) -> anyhow::Result<Vec<UserSummary>> {
    use crate::db::schema::activity_events;
    db::run(pool, move |conn| {
        let pattern = format!("%{}%", search.replace(['%', '_'], ""));
        let list: Vec<User> = users_t::table
            .filter(users_t::username.like(&pattern))
            .order(users_t::username.asc())
            .offset(offset)
            .limit(limit)
            .select(User::as_select())
            .load(conn)?;
        let mut out = Vec::with_capacity(list.len());
        for user in list {
            let keys = api_keys::table
                .filter(api_keys::user_id.eq(user.id))
                .count()
                .get_result(conn)?;
            let last_login = activity_events::table
                .filter(activity_events::user_id.eq(user.id))
                .filter(activity_events::event.eq("login"))
                .select(diesel::dsl::max(activity_events::at))
                .first::<Option<NaiveDateTime>>(conn)?;
            out.push(UserSummary { user, keys, last_login });
        }
        Ok(out)
    })
    .await
}

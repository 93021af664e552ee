//! The `api_keys` table. Only the display prefix and the SHA-256 digest of
//! a key are stored, never the key.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{api_keys, key_scope_use, key_usage, users};
use crate::db::DbConnection;

/// A key as its owner sees it in lists: no secret, no digest.
#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = api_keys)]
pub struct KeyInfo {
    pub id: String,
    pub user_id: i64,
    pub name: String,
    pub prefix: String,
    pub scopes: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub expires_at: Option<NaiveDateTime>,
    /// Set once the key is rotated: it stops working then.
    pub retires_at: Option<NaiveDateTime>,
    pub last_used_address: Option<String>,
    /// Normalised networks, space-separated; empty for anywhere.
    pub allowed_ips: String,
    pub rate_limit_per_minute: Option<i32>,
}

impl KeyInfo {
    pub fn scope_list(&self) -> Vec<String> {
        self.scopes.split_whitespace().map(str::to_owned).collect()
    }
    pub fn is_expired(&self, now: NaiveDateTime) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
    /// When the key stops working: its expiry or its retirement, whichever
    /// comes first.
    pub fn ends_at(&self) -> Option<NaiveDateTime> {
        match (self.expires_at, self.retires_at) {
            (Some(e), Some(r)) => Some(e.min(r)),
            (e, r) => e.or(r),
        }
    }
    /// `active`, `retiring` (rotated, still in its grace period) or
    /// `retired` (past it: refused, about to be removed).
    pub fn state(&self, now: NaiveDateTime) -> &'static str {
        match self.retires_at {
            None => "active",
            Some(r) if r > now => "retiring",
            Some(_) => "retired",
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = api_keys)]
pub struct NewKey<'a> {
    pub id: &'a str,
    pub user_id: i64,
    pub name: &'a str,
    pub prefix: &'a str,
    pub digest: &'a [u8],
    pub scopes: &'a str,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
    pub allowed_ips: &'a str,
    pub rate_limit_per_minute: Option<i32>,
}

pub fn insert(conn: &mut DbConnection, new: &NewKey<'_>) -> QueryResult<usize> {
    diesel::insert_into(api_keys::table).values(new).execute(conn)
}

/// Up to `limit` of the user's keys, newest first (ties by id), starting
/// after the key at `after` (its creation time and id) when given.
pub fn page_for_user(
    conn: &mut DbConnection,
    user_id: i64,
    after: Option<(NaiveDateTime, &str)>,
    limit: i64,
) -> QueryResult<Vec<KeyInfo>> {
    let mut query = api_keys::table
        .filter(api_keys::user_id.eq(user_id))
        .order((api_keys::created_at.desc(), api_keys::id.asc()))
        .limit(limit)
        .select(KeyInfo::as_select())
        .into_boxed();
    if let Some((created, id)) = after {
        query = query.filter(
            api_keys::created_at
                .lt(created)
                .or(api_keys::created_at.eq(created).and(api_keys::id.gt(id.to_owned()))),
        );
    }
    query.load(conn)
}

pub fn count_for_user(conn: &mut DbConnection, user_id: i64) -> QueryResult<i64> {
    api_keys::table
        .filter(api_keys::user_id.eq(user_id))
        .count()
        .get_result(conn)
}

/// One of the user's keys, by id.
pub fn find_for_user(conn: &mut DbConnection, user_id: i64, id: &str) -> QueryResult<Option<KeyInfo>> {
    api_keys::table
        .filter(api_keys::id.eq(id))
        .filter(api_keys::user_id.eq(user_id))
        .select(KeyInfo::as_select())
        .first(conn)
        .optional()
}

/// Whether an active key of the user has this name (retiring keys keep
/// theirs while a successor takes it over).
pub fn name_taken(conn: &mut DbConnection, user_id: i64, name: &str) -> QueryResult<bool> {
    api_keys::table
        .filter(api_keys::user_id.eq(user_id))
        .filter(api_keys::name.eq(name))
        .filter(api_keys::retires_at.is_null())
        .count()
        .get_result::<i64>(conn)
        .map(|n| n > 0)
}

/// What verification needs: the key, its stored digest and its owner's
/// name. A disabled owner's keys are not found.
pub fn find_for_verify(conn: &mut DbConnection, id: &str) -> QueryResult<Option<(KeyInfo, Vec<u8>, String)>> {
    api_keys::table
        .inner_join(users::table)
        .filter(api_keys::id.eq(id))
        .filter(users::disabled_at.is_null())
        .select((KeyInfo::as_select(), api_keys::digest, users::username))
        .first(conn)
        .optional()
}

/// Deletes one of `user_id`'s keys; false when there is no such key of theirs.
pub fn delete_for_user(conn: &mut DbConnection, user_id: i64, id: &str) -> QueryResult<bool> {
    let deleted = diesel::delete(
        api_keys::table
            .filter(api_keys::id.eq(id))
            .filter(api_keys::user_id.eq(user_id)),
    )
    .execute(conn)?
        > 0;
    if deleted {
        forget_usage(conn, id)?;
    }
    Ok(deleted)
}

/// Drops a key's usage records (its counters have no foreign key: a flush
/// racing a delete must not fail).
pub fn forget_usage(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    diesel::delete(key_usage::table.filter(key_usage::key_id.eq(id))).execute(conn)?;
    diesel::delete(key_scope_use::table.filter(key_scope_use::key_id.eq(id))).execute(conn)?;
    Ok(())
}

/// Moves a key's last-used time (and address) forward, never back: with
/// several instances flushing, the latest use wins whatever the order.
pub fn touch(conn: &mut DbConnection, id: &str, at: NaiveDateTime, address: Option<&str>) -> QueryResult<usize> {
    let target = api_keys::table
        .filter(api_keys::id.eq(id))
        .filter(api_keys::last_used_at.is_null().or(api_keys::last_used_at.lt(at)));
    match address {
        Some(a) => diesel::update(target)
            .set((api_keys::last_used_at.eq(at), api_keys::last_used_address.eq(a)))
            .execute(conn),
        None => diesel::update(target).set(api_keys::last_used_at.eq(at)).execute(conn),
    }
}

/// Runs `insert`, and `update` instead when another writer inserted the
/// row first (in a savepoint: on PostgreSQL a failed insert would abort
/// the whole transaction). No `ON CONFLICT`: one query set for both
/// backends.
fn upsert(
    conn: &mut DbConnection,
    mut update: impl FnMut(&mut DbConnection) -> QueryResult<usize>,
    insert: impl FnOnce(&mut DbConnection) -> QueryResult<usize>,
) -> QueryResult<()> {
    if update(conn)? > 0 {
        return Ok(());
    }
    match conn.transaction(insert) {
        Ok(_) => Ok(()),
        Err(e) if crate::db::is_unique_violation(&e) => update(conn).map(|_| ()),
        Err(e) => Err(e),
    }
}

/// Adds `calls` to a key's count for the hour starting at `hour`.
pub fn add_calls(conn: &mut DbConnection, id: &str, hour: NaiveDateTime, calls: i64) -> QueryResult<()> {
    upsert(
        conn,
        |c| {
            diesel::update(key_usage::table.find((id, hour)))
                .set(key_usage::calls.eq(key_usage::calls + calls))
                .execute(c)
        },
        |c| {
            diesel::insert_into(key_usage::table)
                .values((
                    key_usage::key_id.eq(id),
                    key_usage::hour.eq(hour),
                    key_usage::calls.eq(calls),
                ))
                .execute(c)
        },
    )
}

/// Records that a key was checked for `scope` at `at`.
pub fn scope_used(conn: &mut DbConnection, id: &str, scope: &str, at: NaiveDateTime) -> QueryResult<()> {
    upsert(
        conn,
        |c| {
            diesel::update(
                key_scope_use::table
                    .find((id, scope))
                    .filter(key_scope_use::last_used_at.lt(at)),
            )
            .set(key_scope_use::last_used_at.eq(at))
            .execute(c)
            .and_then(|n| {
                // Already as recent: nothing to write, but the row exists.
                if n > 0 {
                    return Ok(n);
                }
                key_scope_use::table
                    .find((id, scope))
                    .count()
                    .get_result::<i64>(c)
                    .map(|m| m as usize)
            })
        },
        |c| {
            diesel::insert_into(key_scope_use::table)
                .values((
                    key_scope_use::key_id.eq(id),
                    key_scope_use::scope.eq(scope),
                    key_scope_use::last_used_at.eq(at),
                ))
                .execute(c)
        },
    )
}

/// A key's calls per hour since `since`, oldest first.
pub fn calls_since(conn: &mut DbConnection, id: &str, since: NaiveDateTime) -> QueryResult<Vec<(NaiveDateTime, i64)>> {
    key_usage::table
        .filter(key_usage::key_id.eq(id))
        .filter(key_usage::hour.ge(since))
        .order(key_usage::hour.asc())
        .select((key_usage::hour, key_usage::calls))
        .load(conn)
}

/// Calls since `since`, per key of the user.
pub fn scopes_used_since(conn: &mut DbConnection, id: &str, since: NaiveDateTime) -> QueryResult<Vec<String>> {
    key_scope_use::table
        .filter(key_scope_use::key_id.eq(id))
        .filter(key_scope_use::last_used_at.ge(since))
        .order(key_scope_use::scope.asc())
        .select(key_scope_use::scope)
        .load(conn)
}

/// The fields an owner may edit.
pub struct KeyEdit<'a> {
    pub name: &'a str,
    pub scopes: &'a str,
    pub allowed_ips: &'a str,
    pub rate_limit_per_minute: Option<i32>,
}

/// Edits one of the user's keys that is not retiring; false when there is
/// no such key.
pub fn update_for_user(conn: &mut DbConnection, user_id: i64, id: &str, edit: &KeyEdit<'_>) -> QueryResult<bool> {
    diesel::update(
        api_keys::table
            .filter(api_keys::id.eq(id))
            .filter(api_keys::user_id.eq(user_id))
            .filter(api_keys::retires_at.is_null()),
    )
    .set((
        api_keys::name.eq(edit.name),
        api_keys::scopes.eq(edit.scopes),
        api_keys::allowed_ips.eq(edit.allowed_ips),
        api_keys::rate_limit_per_minute.eq(edit.rate_limit_per_minute),
    ))
    .execute(conn)
    .map(|n| n > 0)
}

/// Sets when a key of the user stops working; only an active key may be
/// set retiring (`only_active`), a retiring one may be retired sooner.
pub fn set_retires_at(
    conn: &mut DbConnection,
    user_id: i64,
    id: &str,
    at: NaiveDateTime,
    only_active: bool,
) -> QueryResult<bool> {
    let target = api_keys::table
        .filter(api_keys::id.eq(id))
        .filter(api_keys::user_id.eq(user_id));
    let n = if only_active {
        diesel::update(target.filter(api_keys::retires_at.is_null()))
            .set(api_keys::retires_at.eq(at))
            .execute(conn)?
    } else {
        diesel::update(target.filter(api_keys::retires_at.gt(at)))
            .set(api_keys::retires_at.eq(at))
            .execute(conn)?
    };
    Ok(n > 0)
}

/// Deletes use records of keys that no longer exist (a flush on one
/// instance can race a delete on another); returns how many.
pub fn prune_orphan_usage(conn: &mut DbConnection) -> QueryResult<usize> {
    let live = api_keys::table.select(api_keys::id);
    let calls =
        diesel::delete(key_usage::table.filter(diesel::dsl::not(key_usage::key_id.eq_any(live)))).execute(conn)?;
    let live = api_keys::table.select(api_keys::id);
    let scopes = diesel::delete(key_scope_use::table.filter(diesel::dsl::not(key_scope_use::key_id.eq_any(live))))
        .execute(conn)?;
    Ok(calls + scopes)
}

/// Keys whose grace period has ended, to be removed.
pub fn retired_before(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<Vec<(String, i64)>> {
    api_keys::table
        .filter(api_keys::retires_at.le(now))
        .select((api_keys::id, api_keys::user_id))
        .load(conn)
}

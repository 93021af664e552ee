//! The `api_keys` table. Only the display prefix and the SHA-256 digest of
//! a key are stored, never the key.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{api_keys, users};
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
}

impl KeyInfo {
    pub fn scope_list(&self) -> Vec<String> {
        self.scopes.split_whitespace().map(str::to_owned).collect()
    }
    pub fn is_expired(&self, now: NaiveDateTime) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
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

pub fn name_taken(conn: &mut DbConnection, user_id: i64, name: &str) -> QueryResult<bool> {
    api_keys::table
        .filter(api_keys::user_id.eq(user_id))
        .filter(api_keys::name.eq(name))
        .count()
        .get_result::<i64>(conn)
        .map(|n| n > 0)
}

/// What verification needs: the key, its stored digest and its owner's name.
pub fn find_for_verify(conn: &mut DbConnection, id: &str) -> QueryResult<Option<(KeyInfo, Vec<u8>, String)>> {
    api_keys::table
        .inner_join(users::table)
        .filter(api_keys::id.eq(id))
        .select((KeyInfo::as_select(), api_keys::digest, users::username))
        .first(conn)
        .optional()
}

/// Deletes one of `user_id`'s keys; false when there is no such key of theirs.
pub fn delete_for_user(conn: &mut DbConnection, user_id: i64, id: &str) -> QueryResult<bool> {
    diesel::delete(
        api_keys::table
            .filter(api_keys::id.eq(id))
            .filter(api_keys::user_id.eq(user_id)),
    )
    .execute(conn)
    .map(|n| n > 0)
}

/// Moves a key's last-used time forward, never back: with several
/// instances flushing, the latest use wins whatever the flush order.
pub fn touch(conn: &mut DbConnection, id: &str, at: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(
        api_keys::table
            .filter(api_keys::id.eq(id))
            .filter(api_keys::last_used_at.is_null().or(api_keys::last_used_at.lt(at))),
    )
    .set(api_keys::last_used_at.eq(at))
    .execute(conn)
}

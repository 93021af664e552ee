//! Server-side session records. The browser's (encrypted) cookie holds a
//! random session token; the table holds only its SHA-256. Deleting the row
//! ends the session everywhere, so a replayed old cookie is refused after
//! logout, and a password change can end every other session at once.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use sha2::{Digest, Sha256};

use super::users::User;
use crate::db::schema::{user_sessions, users};
use crate::db::DbConnection;

/// The random token naming one session. `Debug` is redacted.
#[derive(Clone)]
pub struct SessionToken(String);

impl SessionToken {
    pub fn generate() -> Self {
        Self(crate::keys::format::random_base62(43))
    }
    pub fn from_cookie(s: String) -> Self {
        Self(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn digest(&self) -> Vec<u8> {
        Sha256::digest(self.0.as_bytes()).to_vec()
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken([REDACTED])")
    }
}

pub fn create(conn: &mut DbConnection, user_id: i64, now: NaiveDateTime) -> QueryResult<SessionToken> {
    let token = SessionToken::generate();
    diesel::insert_into(user_sessions::table)
        .values((
            user_sessions::id.eq(token.digest()),
            user_sessions::user_id.eq(user_id),
            user_sessions::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(token)
}

/// The session's user, if the session exists and is younger than `max_age`.
pub fn find_user(
    conn: &mut DbConnection,
    token: &SessionToken,
    now: NaiveDateTime,
    max_age: Duration,
) -> QueryResult<Option<User>> {
    users::table
        .inner_join(user_sessions::table)
        .filter(user_sessions::id.eq(token.digest()))
        .filter(user_sessions::created_at.gt(now - max_age))
        .select(User::as_select())
        .first(conn)
        .optional()
}

pub fn delete(conn: &mut DbConnection, token: &SessionToken) -> QueryResult<usize> {
    diesel::delete(user_sessions::table.filter(user_sessions::id.eq(token.digest()))).execute(conn)
}

/// Ends every session of `user_id` except `keep` (the one making the change).
pub fn delete_others(conn: &mut DbConnection, user_id: i64, keep: Option<&SessionToken>) -> QueryResult<usize> {
    let q = user_sessions::table.filter(user_sessions::user_id.eq(user_id));
    match keep {
        Some(k) => diesel::delete(q.filter(user_sessions::id.ne(k.digest()))).execute(conn),
        None => diesel::delete(q).execute(conn),
    }
}

/// Housekeeping: drops sessions older than `max_age`.
pub fn delete_expired(conn: &mut DbConnection, now: NaiveDateTime, max_age: Duration) -> QueryResult<usize> {
    diesel::delete(user_sessions::table.filter(user_sessions::created_at.le(now - max_age))).execute(conn)
}

//! Server-side session records. The browser's (encrypted) cookie holds a
//! random session token; the table holds only its SHA-256. Deleting the row
//! ends the session everywhere, so a replayed old cookie is refused after
//! logout, and a password change can end every other session at once.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::users::User;
use crate::db::schema::{user_sessions, users};
use crate::db::DbConnection;

/// The random token naming one session. `Debug` is redacted.
#[derive(Clone, Debug)]
pub struct SessionToken(SecretString);

impl SessionToken {
    pub fn generate() -> Self {
        Self(crate::keys::format::random_base62(43).into())
    }
    pub fn from_cookie(s: String) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
    pub fn digest(&self) -> Vec<u8> {
        Sha256::digest(self.0.expose_secret().as_bytes()).to_vec()
    }
}

/// A session as its user sees it on the sessions page.
#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = user_sessions)]
pub struct SessionInfo {
    /// A random id that names the session in pages and forms (the token
    /// itself never leaves the cookie).
    pub public_id: String,
    pub created_at: NaiveDateTime,
    pub last_seen_at: Option<NaiveDateTime>,
    /// When its user last proved who they are (login, or `/confirm`).
    pub authenticated_at: Option<NaiveDateTime>,
    pub address: String,
    pub user_agent: String,
}

/// Where a session was opened from.
pub struct NewSession<'a> {
    pub address: &'a str,
    pub user_agent: &'a str,
}

pub fn create(
    conn: &mut DbConnection,
    user_id: i64,
    now: NaiveDateTime,
    origin: &NewSession<'_>,
) -> QueryResult<SessionToken> {
    let token = SessionToken::generate();
    diesel::insert_into(user_sessions::table)
        .values((
            user_sessions::id.eq(token.digest()),
            user_sessions::user_id.eq(user_id),
            user_sessions::created_at.eq(now),
            user_sessions::public_id.eq(crate::keys::format::random_base62(16)),
            user_sessions::address.eq(origin.address),
            user_sessions::user_agent.eq(origin.user_agent),
            user_sessions::last_seen_at.eq(now),
            user_sessions::authenticated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(token)
}

/// The session's user and the session, if it exists and is younger than
/// `max_age`. Marks it seen (at most once a minute: a page view is not a
/// write).
pub fn find_user(
    conn: &mut DbConnection,
    token: &SessionToken,
    now: NaiveDateTime,
    max_age: Duration,
) -> QueryResult<Option<(User, SessionInfo)>> {
    let found = users::table
        .inner_join(user_sessions::table)
        .filter(user_sessions::id.eq(token.digest()))
        .filter(user_sessions::created_at.gt(now - max_age))
        .filter(users::disabled_at.is_null())
        .select((User::as_select(), SessionInfo::as_select()))
        .first::<(User, SessionInfo)>(conn)
        .optional()?;
    if let Some((_, s)) = &found {
        if s.last_seen_at.is_none_or(|t| now - t > Duration::minutes(1)) {
            diesel::update(user_sessions::table.filter(user_sessions::id.eq(token.digest())))
                .set(user_sessions::last_seen_at.eq(now))
                .execute(conn)?;
        }
    }
    Ok(found)
}

/// Records that the session's user just proved who they are.
pub fn reauthenticated(conn: &mut DbConnection, token: &SessionToken, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::update(user_sessions::table.filter(user_sessions::id.eq(token.digest())))
        .set(user_sessions::authenticated_at.eq(now))
        .execute(conn)
}

/// The user's live sessions, newest first.
pub fn list(
    conn: &mut DbConnection,
    user_id: i64,
    now: NaiveDateTime,
    max_age: Duration,
) -> QueryResult<Vec<SessionInfo>> {
    user_sessions::table
        .filter(user_sessions::user_id.eq(user_id))
        .filter(user_sessions::created_at.gt(now - max_age))
        .order(user_sessions::created_at.desc())
        .select(SessionInfo::as_select())
        .load(conn)
}

/// Ends one of the user's sessions by its public id; false when they have
/// no such session.
pub fn delete_by_public_id(conn: &mut DbConnection, user_id: i64, public_id: &str) -> QueryResult<bool> {
    if public_id.is_empty() {
        return Ok(false);
    }
    diesel::delete(
        user_sessions::table
            .filter(user_sessions::user_id.eq(user_id))
            .filter(user_sessions::public_id.eq(public_id)),
    )
    .execute(conn)
    .map(|n| n > 0)
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

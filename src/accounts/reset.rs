//! Password-reset tokens: ≥128 random bits, stored only as SHA-256, short
//! lived, single use; a newer request replaces older tokens.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::users::User;
use crate::db::schema::{password_reset_tokens as tokens, users};
use crate::db::DbConnection;

/// 43 base62 characters ≈ 256 bits. `Debug` is redacted.
#[derive(Clone, Debug)]
pub struct ResetToken(SecretString);

impl ResetToken {
    pub fn generate() -> Self {
        Self(crate::keys::format::random_base62(43).into())
    }
    /// A token from a link; anything that is not 43 base62 characters can
    /// never match and is refused without a lookup.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 43 && s.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| Self(s.into()))
    }
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
    pub fn digest(&self) -> Vec<u8> {
        Sha256::digest(self.0.expose_secret().as_bytes()).to_vec()
    }
}

/// Issues a token for `user_id`, replacing any older ones.
pub fn issue(conn: &mut DbConnection, user_id: i64, now: NaiveDateTime, lifetime: Duration) -> QueryResult<ResetToken> {
    let token = ResetToken::generate();
    conn.transaction(|conn| {
        diesel::delete(tokens::table.filter(tokens::user_id.eq(user_id))).execute(conn)?;
        diesel::insert_into(tokens::table)
            .values((
                tokens::digest.eq(token.digest()),
                tokens::user_id.eq(user_id),
                tokens::created_at.eq(now),
                tokens::expires_at.eq(now + lifetime),
            ))
            .execute(conn)
    })?;
    Ok(token)
}

/// The user a still-valid token belongs to.
pub fn find_user(conn: &mut DbConnection, token: &ResetToken, now: NaiveDateTime) -> QueryResult<Option<User>> {
    users::table
        .inner_join(tokens::table)
        .filter(tokens::digest.eq(token.digest()))
        .filter(tokens::expires_at.gt(now))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// Uses the token of `user` (as `find_user` found it) to set a new password
/// hash: in one transaction that starts by deleting the token, so of two
/// concurrent redemptions exactly one succeeds. Ends every session of the
/// user. Returns the user, or None when the token expired or was used
/// since it was found.
pub fn redeem(
    conn: &mut DbConnection,
    token: &ResetToken,
    user: User,
    new_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<User>> {
    let done = conn.transaction(|conn| {
        let claimed = diesel::delete(
            tokens::table
                .filter(tokens::digest.eq(token.digest()))
                .filter(tokens::user_id.eq(user.id))
                .filter(tokens::expires_at.gt(now)),
        )
        .execute(conn)?;
        if claimed != 1 {
            return Ok(false);
        }
        super::set_password_ending_sessions(conn, user.id, new_hash, None)?;
        diesel::delete(tokens::table.filter(tokens::user_id.eq(user.id))).execute(conn)?;
        Ok::<_, diesel::result::Error>(true)
    })?;
    Ok(done.then_some(user))
}

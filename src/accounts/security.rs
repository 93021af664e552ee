//! Account security in the database: two-factor on and off, codes used
//! once, recovery codes, email-change tokens, sessions, deletion
//! (docs/account-security.md).

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use sha2::{Digest, Sha256};

use super::totp;
use super::users::{self, User};
use crate::db::schema::{api_keys, email_change_tokens as tokens, recovery_codes, user_sessions, users as users_t};
use crate::db::{self, Pool};

/// Turns two-factor on: stores the sealed secret and the digests of the
/// recovery codes, replacing any old ones.
pub async fn enable_totp(
    pool: &Pool,
    user_id: i64,
    sealed: Vec<u8>,
    codes: &[String],
    step: i64,
) -> anyhow::Result<bool> {
    let digests: Vec<Vec<u8>> = codes.iter().map(|c| totp::recovery_digest(c)).collect();
    db::run(pool, move |conn| {
        Ok(conn.transaction::<_, diesel::result::Error, _>(|conn| {
            let n = diesel::update(users_t::table.find(user_id).filter(users_t::totp_secret.is_null()))
                .set((users_t::totp_secret.eq(&sealed), users_t::totp_last_step.eq(step)))
                .execute(conn)?;
            if n == 0 {
                return Ok(false);
            }
            diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id))).execute(conn)?;
            for d in &digests {
                diesel::insert_into(recovery_codes::table)
                    .values((recovery_codes::digest.eq(d), recovery_codes::user_id.eq(user_id)))
                    .execute(conn)?;
            }
            Ok(true)
        })?)
    })
    .await
}

pub async fn disable_totp(pool: &Pool, user_id: i64) -> anyhow::Result<()> {
    db::run(pool, move |conn| {
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            diesel::update(users_t::table.find(user_id))
                .set((
                    users_t::totp_secret.eq(None::<Vec<u8>>),
                    users_t::totp_last_step.eq(None::<i64>),
                ))
                .execute(conn)?;
            diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id))).execute(conn)?;
            Ok(())
        })?;
        Ok(())
    })
    .await
}

/// Accepts a TOTP code or an unused recovery code of `user` once: the
/// step (or the recovery code) is claimed in one conditional update, so
/// two requests with the same code cannot both pass.
pub async fn second_factor(
    pool: &Pool,
    key: &totp::SealingKey,
    user: &User,
    typed: &str,
    unix: u64,
) -> anyhow::Result<bool> {
    let Some(sealed) = &user.totp_secret else {
        return Ok(false);
    };
    let user_id = user.id;
    if let Some(code) = totp::parse_code(typed) {
        let Some(secret) = key.open(sealed) else {
            tracing::error!(user = %user.username, "cannot open the TOTP secret: was session.key replaced?");
            return Ok(false);
        };
        let Some(step) = totp::matching_step(&secret, &code, unix, user.totp_last_step) else {
            return Ok(false);
        };
        return db::run(pool, move |conn| {
            let n = diesel::update(
                users_t::table
                    .find(user_id)
                    .filter(users_t::totp_last_step.is_null().or(users_t::totp_last_step.lt(step))),
            )
            .set(users_t::totp_last_step.eq(step))
            .execute(conn)?;
            Ok(n == 1)
        })
        .await;
    }
    let cleaned: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    if cleaned.len() != 11 {
        return Ok(false);
    }
    let digest = totp::recovery_digest(&cleaned);
    db::run(pool, move |conn| {
        let n = diesel::update(
            recovery_codes::table
                .filter(recovery_codes::digest.eq(&digest))
                .filter(recovery_codes::user_id.eq(user_id))
                .filter(recovery_codes::used_at.is_null()),
        )
        .set(recovery_codes::used_at.eq(crate::time::now()))
        .execute(conn)?;
        Ok(n == 1)
    })
    .await
}

pub async fn recovery_codes_left(pool: &Pool, user_id: i64) -> anyhow::Result<i64> {
    db::run(pool, move |conn| {
        Ok(recovery_codes::table
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::used_at.is_null())
            .count()
            .get_result(conn)?)
    })
    .await
}

/// An email-change token: as a reset token (43 base62 characters, stored
/// as SHA-256, 30 minutes, once; a newer request replaces older ones).
pub async fn request_email_change(
    pool: &Pool,
    user_id: i64,
    new_email: String,
    lifetime: Duration,
) -> anyhow::Result<String> {
    let token = crate::keys::format::random_base62(43);
    let digest = Sha256::digest(token.as_bytes()).to_vec();
    db::run(pool, move |conn| {
        let now = crate::time::now();
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            diesel::delete(tokens::table.filter(tokens::user_id.eq(user_id))).execute(conn)?;
            diesel::insert_into(tokens::table)
                .values((
                    tokens::digest.eq(&digest),
                    tokens::user_id.eq(user_id),
                    tokens::new_email.eq(&new_email),
                    tokens::created_at.eq(now),
                    tokens::expires_at.eq(now + lifetime),
                ))
                .execute(conn)?;
            Ok(())
        })?;
        Ok(())
    })
    .await?;
    Ok(token)
}

/// Follows an email-change link: the token must be live and belong to
/// `user_id` (a link opened in someone else's session does nothing).
/// Returns (old address, new address).
pub async fn confirm_email_change(pool: &Pool, user_id: i64, token: &str) -> anyhow::Result<Option<(String, String)>> {
    if token.len() != 43 || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Ok(None);
    }
    let digest = Sha256::digest(token.as_bytes()).to_vec();
    db::run(pool, move |conn| {
        let now = crate::time::now();
        Ok(conn.transaction::<_, diesel::result::Error, _>(|conn| {
            let found: Option<(i64, String)> = tokens::table
                .filter(tokens::digest.eq(&digest))
                .filter(tokens::expires_at.gt(now))
                .select((tokens::user_id, tokens::new_email))
                .first(conn)
                .optional()?;
            let Some((owner, new_email)) = found.filter(|(owner, _)| *owner == user_id) else {
                return Ok(None);
            };
            let old: String = users_t::table.find(owner).select(users_t::email).first(conn)?;
            diesel::update(users_t::table.find(owner))
                .set(users_t::email.eq(&new_email))
                .execute(conn)?;
            diesel::delete(tokens::table.filter(tokens::user_id.eq(owner))).execute(conn)?;
            // Reset links mailed to the old address die with it.
            diesel::delete(
                crate::db::schema::password_reset_tokens::table
                    .filter(crate::db::schema::password_reset_tokens::user_id.eq(owner)),
            )
            .execute(conn)?;
            Ok(Some((old, new_email)))
        })?)
    })
    .await
}

/// Deletes an account with its keys and sessions; returns the ids of the
/// keys it had, for the caller to forget.
pub async fn delete_account(pool: &Pool, user_id: i64) -> anyhow::Result<Vec<String>> {
    db::run(pool, move |conn| {
        Ok(conn.transaction::<_, diesel::result::Error, _>(|conn| {
            let ids: Vec<String> = api_keys::table
                .filter(api_keys::user_id.eq(user_id))
                .select(api_keys::id)
                .load(conn)?;
            for id in &ids {
                crate::keys::store::delete_for_user(conn, user_id, id)?;
                db::revocation::notify_revoked(conn, id)?;
            }
            diesel::delete(user_sessions::table.filter(user_sessions::user_id.eq(user_id))).execute(conn)?;
            diesel::delete(users_t::table.find(user_id)).execute(conn)?;
            Ok(ids)
        })?)
    })
    .await
}

pub async fn find_by_id(pool: &Pool, user_id: i64) -> anyhow::Result<Option<User>> {
    db::run(pool, move |conn| Ok(users::find_by_id(conn, user_id)?)).await
}

/// Sessions: list, revoke one, revoke all but this one.
pub async fn sessions(
    pool: &Pool,
    user_id: i64,
    max_age: Duration,
) -> anyhow::Result<Vec<super::sessions::SessionInfo>> {
    db::run(pool, move |conn| {
        Ok(super::sessions::list(conn, user_id, crate::time::now(), max_age)?)
    })
    .await
}

pub async fn revoke_session(pool: &Pool, user_id: i64, public_id: String) -> anyhow::Result<bool> {
    db::run(pool, move |conn| {
        Ok(super::sessions::delete_by_public_id(conn, user_id, &public_id)?)
    })
    .await
}

pub async fn revoke_other_sessions(pool: &Pool, user_id: i64, keep: super::SessionToken) -> anyhow::Result<usize> {
    db::run(pool, move |conn| {
        Ok(super::sessions::delete_others(conn, user_id, Some(&keep))?)
    })
    .await
}

pub async fn reauthenticated(pool: &Pool, token: super::SessionToken) -> anyhow::Result<()> {
    db::run(pool, move |conn| {
        super::sessions::reauthenticated(conn, &token, crate::time::now())?;
        Ok(())
    })
    .await
}

/// Whether a session proved its user recently enough.
pub fn is_recent(authenticated_at: Option<NaiveDateTime>, within: Duration, now: NaiveDateTime) -> bool {
    authenticated_at.is_some_and(|t| now - t <= within)
}

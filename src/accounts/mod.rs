//! Accounts: users, passwords, server-side sessions.

pub mod common_passwords;
pub mod counters;
pub mod domain;
pub mod password;
pub mod reset;
pub mod security;
pub mod sessions;
pub mod throttle;
pub mod totp;
pub mod users;

use chrono::Duration;

use crate::db::{self, Pool};
use domain::{Email, Password, Username};
pub use sessions::SessionToken;
pub use users::User;

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("username taken")]
    UsernameTaken,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A new account, and the accounts that already had its email address
/// (their owners are told: addresses are not unique, so registering
/// reveals nothing about who has an account; see docs/accounts.md).
pub struct Registered {
    pub user: User,
    pub same_email: Vec<User>,
}

/// Creates an account. A taken username is refused before any Argon2
/// work; the hash itself waits at low priority (`password::Priority::Low`)
/// and fails with `password::Busy` when too many are queued.
pub async fn register(
    pool: &Pool,
    username: Username,
    email: Email,
    password: Password,
) -> Result<Registered, RegisterError> {
    let name = username.as_str().to_owned();
    if db::run(pool, move |conn| Ok(users::find_by_username(conn, &name)?))
        .await?
        .is_some()
    {
        return Err(RegisterError::UsernameTaken);
    }
    let hash = password::hash(password, password::Priority::Low).await?;
    let result = db::run(pool, move |conn| {
        let same_email = users::find_by_email(conn, email.as_str())?;
        let new = users::NewUser {
            username: username.as_str(),
            email: email.as_str(),
            password_hash: &hash,
            created_at: crate::time::now(),
        };
        match users::create(conn, &new) {
            Ok(user) => Ok(Ok(Registered { user, same_email })),
            // Lost a race with another registration of the same name.
            Err(e) if db::is_unique_violation(&e) => Ok(Err(RegisterError::UsernameTaken)),
            Err(e) => Err(anyhow::Error::new(e).context("inserting user")),
        }
    })
    .await?;
    result
}

/// Checks a username and password. Unknown users (and names no account
/// can have: `None`) cost the same Argon2 work as known ones, and the
/// caller cannot tell them apart. A correct password stored under weaker
/// parameters is re-hashed.
pub async fn authenticate(
    pool: &Pool,
    username: Option<&domain::Username>,
    password: String,
) -> anyhow::Result<Option<User>> {
    let user = match username {
        Some(name) => find_user(pool, name).await?,
        None => None,
    };
    let outcome = password::verify(user.as_ref().map(|u| u.password_hash.clone()), password.clone()).await?;
    match (outcome, user) {
        (password::Verified::Yes, Some(u)) => Ok(Some(u)),
        (password::Verified::YesButRehash, Some(u)) => {
            // The password may predate today's rules; it stays valid, only
            // its hash is brought up to today's parameters.
            let hash = password::hash_raw(domain::normalize(&password)).await?;
            let id = u.id;
            db::run(pool, move |conn| Ok(users::set_password_hash(conn, id, &hash)?)).await?;
            Ok(Some(u))
        }
        _ => Ok(None),
    }
}

/// The account with this username.
pub async fn find_user(pool: &Pool, username: &domain::Username) -> anyhow::Result<Option<User>> {
    let name = username.as_str().to_owned();
    db::run(pool, move |conn| Ok(users::find_by_username(conn, &name)?)).await
}

pub async fn start_session(
    pool: &Pool,
    user_id: i64,
    address: String,
    user_agent: String,
) -> anyhow::Result<SessionToken> {
    db::run(pool, move |conn| {
        let origin = sessions::NewSession {
            address: &address,
            user_agent: &user_agent,
        };
        Ok(sessions::create(conn, user_id, crate::time::now(), &origin)?)
    })
    .await
}

/// The session's user and the session itself.
pub async fn session(
    pool: &Pool,
    token: SessionToken,
    max_age: Duration,
) -> anyhow::Result<Option<(User, sessions::SessionInfo)>> {
    db::run(pool, move |conn| {
        Ok(sessions::find_user(conn, &token, crate::time::now(), max_age)?)
    })
    .await
}

pub async fn end_session(pool: &Pool, token: SessionToken) -> anyhow::Result<()> {
    db::run(pool, move |conn| Ok(sessions::delete(conn, &token).map(|_| ())?)).await
}

/// Sets a new password and ends every session of the user except `keep`.
/// API keys are not touched: they keep working.
pub async fn change_password(
    pool: &Pool,
    user_id: i64,
    new: Password,
    keep: Option<SessionToken>,
) -> anyhow::Result<()> {
    let hash = password::hash(new, password::Priority::Normal).await?;
    db::run(pool, move |conn| {
        use diesel::Connection as _;
        conn.transaction(|conn| set_password_ending_sessions(conn, user_id, &hash, keep.as_ref()))?;
        Ok(())
    })
    .await
}

/// What a password change and a reset share, inside the caller's
/// transaction: the new hash, and every session of the user ends but
/// `keep` (the session that changed it, if any).
pub(crate) fn set_password_ending_sessions(
    conn: &mut db::DbConnection,
    user_id: i64,
    hash: &str,
    keep: Option<&SessionToken>,
) -> diesel::QueryResult<()> {
    users::set_password_hash(conn, user_id, hash)?;
    sessions::delete_others(conn, user_id, keep)?;
    Ok(())
}

/// Issues a reset token for each account with this email address. The
/// caller must answer the same whether or not one was issued.
pub async fn request_password_reset(
    pool: &Pool,
    email: &domain::Email,
    lifetime: Duration,
) -> anyhow::Result<Vec<(User, reset::ResetToken)>> {
    let email = email.as_str().to_owned();
    db::run(pool, move |conn| {
        let mut issued = Vec::new();
        for user in users::find_by_email(conn, &email)? {
            let token = reset::issue(conn, user.id, crate::time::now(), lifetime)?;
            issued.push((user, token));
        }
        Ok(issued)
    })
    .await
}

pub async fn reset_token_user(pool: &Pool, token: reset::ResetToken) -> anyhow::Result<Option<User>> {
    db::run(pool, move |conn| {
        Ok(reset::find_user(conn, &token, crate::time::now())?)
    })
    .await
}

/// Sets a new password through a reset token; ends every session of the
/// user. None when the token is unknown, expired or used.
pub async fn reset_password(pool: &Pool, token: reset::ResetToken, new: Password) -> anyhow::Result<Option<User>> {
    // The one lookup of the token, before any Argon2 work: a dead link
    // costs none.
    let Some(user) = reset_token_user(pool, token.clone()).await? else {
        return Ok(None);
    };
    let hash = password::hash(new, password::Priority::Normal).await?;
    db::run(pool, move |conn| {
        Ok(reset::redeem(conn, &token, user, &hash, crate::time::now())?)
    })
    .await
}

//! The security event log: what happened to an account, when, from where.
//! Written by the handlers through `record`, read by `/account/activity`
//! (and by operators). Events are kept `KEYWARD_ACTIVITY_RETENTION_DAYS`.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::activity_events;
use crate::db::{self, Pool};

/// The kinds of event, as stored and shown (`data-event`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Login,
    LoginFailed,
    Logout,
    PasswordChanged,
    PasswordReset,
    KeyCreated,
    KeyUpdated,
    KeyRotated,
    KeyDeleted,
    EmailChanged,
    TotpEnabled,
    TotpDisabled,
    SessionRevoked,
    KeyLeaked,
    AccountDisabled,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::LoginFailed => "login_failed",
            Self::Logout => "logout",
            Self::PasswordChanged => "password_changed",
            Self::PasswordReset => "password_reset",
            Self::KeyCreated => "key_created",
            Self::KeyUpdated => "key_updated",
            Self::KeyRotated => "key_rotated",
            Self::KeyDeleted => "key_deleted",
            Self::EmailChanged => "email_changed",
            Self::TotpEnabled => "totp_enabled",
            Self::TotpDisabled => "totp_disabled",
            Self::SessionRevoked => "session_revoked",
            Self::KeyLeaked => "key_leaked",
            Self::AccountDisabled => "account_disabled",
        }
    }
}

/// Where a request came from, as the log keeps it.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    pub address: String,
    /// Cut to 256 characters.
    pub user_agent: String,
}

impl Origin {
    pub fn new(address: String, user_agent: &str) -> Self {
        Self {
            address,
            user_agent: user_agent.chars().filter(|c| !c.is_control()).take(256).collect(),
        }
    }
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = activity_events)]
pub struct EventRow {
    pub id: i64,
    pub user_id: i64,
    pub event: String,
    pub at: NaiveDateTime,
    pub address: String,
    pub user_agent: String,
    pub key_prefix: String,
    pub detail: String,
}

/// Records an event. The log must never break what it records: a failure
/// is logged and swallowed.
pub async fn record(pool: &Pool, user_id: i64, event: Event, origin: &Origin, key_prefix: &str) {
    let origin = origin.clone();
    let prefix = key_prefix.to_owned();
    let written = db::run(pool, move |conn| {
        diesel::insert_into(activity_events::table)
            .values((
                activity_events::user_id.eq(user_id),
                activity_events::event.eq(event.as_str()),
                activity_events::at.eq(crate::time::now()),
                activity_events::address.eq(&origin.address),
                activity_events::user_agent.eq(&origin.user_agent),
                activity_events::key_prefix.eq(&prefix),
                activity_events::detail.eq(""),
            ))
            .execute(conn)?;
        Ok(())
    })
    .await;
    if let Err(e) = written {
        tracing::error!(error = ?e, event = event.as_str(), "cannot record an activity event");
    }
}

/// Events shown on one page.
pub const PAGE_SIZE: i64 = 50;

/// A user's events, newest first, older than event `before` when given;
/// one more than a page, so the caller knows whether there is a next.
pub async fn for_user(pool: &Pool, user_id: i64, before: Option<i64>) -> anyhow::Result<Vec<EventRow>> {
    db::run(pool, move |conn| {
        let mut q = activity_events::table
            .filter(activity_events::user_id.eq(user_id))
            .order(activity_events::id.desc())
            .limit(PAGE_SIZE + 1)
            .select(EventRow::as_select())
            .into_boxed();
        if let Some(b) = before {
            q = q.filter(activity_events::id.lt(b));
        }
        Ok(q.load(conn)?)
    })
    .await
}

/// Deletes events older than `before`; returns how many.
pub async fn prune(pool: &Pool, before: NaiveDateTime) -> anyhow::Result<usize> {
    db::run(pool, move |conn| {
        Ok(diesel::delete(activity_events::table.filter(activity_events::at.lt(before))).execute(conn)?)
    })
    .await
}

/// Events of every user for operators, newest first, older than event
/// `before` when given, filtered by username and event; `limit` at most.
pub async fn all(
    pool: &Pool,
    user: Option<String>,
    event: Option<String>,
    before: Option<i64>,
    limit: i64,
) -> anyhow::Result<Vec<(EventRow, String)>> {
    use crate::db::schema::users;
    db::run(pool, move |conn| {
        let mut q = activity_events::table
            .inner_join(users::table)
            .order(activity_events::id.desc())
            .limit(limit)
            .select((EventRow::as_select(), users::username))
            .into_boxed();
        if let Some(u) = user {
            q = q.filter(users::username.eq(u));
        }
        if let Some(e) = event {
            q = q.filter(activity_events::event.eq(e));
        }
        if let Some(b) = before {
            q = q.filter(activity_events::id.lt(b));
        }
        Ok(q.load(conn)?)
    })
    .await
}

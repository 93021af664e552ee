//! Mail about keys to their owners: created, rotated, deleted, expiring,
//! and a retiring key still in use. Texts are askama templates
//! (`templates/mail/`).
//!
//! Reminders go out once whatever restarts or instances happen: the sender
//! first inserts a claim (`mail_claims`), and only the one whose insert
//! succeeds sends.

use askama::Template;
use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::accounts::User;
use crate::db::schema::{api_keys, mail_claims, users};
use crate::db::{self, DbConnection};
use crate::mail::MailKind;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "mail/key_event.txt")]
struct KeyMail<'a> {
    username: &'a str,
    what: &'a str,
    name: &'a str,
    prefix: &'a str,
    when: String,
    address: &'a str,
    extra: Option<String>,
    advice: &'a str,
    base: &'a str,
}

/// What happened to a key, for its owner's mail.
#[derive(Clone, Copy, Debug)]
pub enum KeyNotice {
    Created,
    Rotated,
    Deleted,
}

fn when(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Tells the owner about a change they (or someone with their session) made.
pub fn key_changed(
    state: &AppState,
    user: &User,
    notice: KeyNotice,
    name: &str,
    prefix: &str,
    address: &str,
    extra: Option<String>,
) {
    let (what, subject, advice) = match notice {
        KeyNotice::Created => (
            "A new API key was created",
            "A new Keyward API key was created",
            "If this was not you, delete the key at once and change your password.",
        ),
        KeyNotice::Rotated => (
            "An API key was rotated",
            "A Keyward API key was rotated",
            "Move your programs to the new key before the old one stops working. If this was not you, delete both keys and change your password.",
        ),
        KeyNotice::Deleted => (
            "An API key was deleted",
            "A Keyward API key was deleted",
            "Programs using it are refused from now on. If this was not you, change your password.",
        ),
    };
    send(
        state,
        user,
        subject,
        KeyMail {
            username: &user.username,
            what,
            name,
            prefix,
            when: when(crate::time::now()),
            address: if address.is_empty() { "unknown" } else { address },
            extra,
            advice,
            base: state.settings.base_url(),
        },
    );
}

fn send(state: &AppState, user: &User, subject: &str, mail: KeyMail<'_>) {
    match mail.render() {
        Ok(body) => state
            .mailer
            .send_in_background(&user.email, subject, body, MailKind::KeyNotice),
        Err(e) => tracing::error!(error = %e, "cannot render a key mail"),
    }
}

/// Claims the right to send the mail named `claim`: true for exactly one
/// caller, ever.
pub fn claim_once(conn: &mut DbConnection, claim: &str, now: NaiveDateTime) -> QueryResult<bool> {
    let inserted = conn.transaction(|c| {
        diesel::insert_into(mail_claims::table)
            .values((mail_claims::claim.eq(claim), mail_claims::claimed_at.eq(now)))
            .execute(c)
    });
    match inserted {
        Ok(_) => Ok(true),
        Err(e) if db::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A reminder due for a key.
struct Due {
    claim: String,
    user: User,
    name: String,
    prefix: String,
    at: NaiveDateTime,
    kind: &'static str,
}

/// Sends the reminders that are due: 7 days and 1 day before a key
/// expires, and when a retiring key is still used in its last hour. Each
/// goes once (claimed first). Returns how many were sent.
pub async fn send_due_reminders(state: &AppState, now: NaiveDateTime) -> anyhow::Result<usize> {
    let due = db::run(&state.pool, move |conn| {
        let mut due = Vec::new();
        let keys = |conn: &mut DbConnection, within: Duration| {
            api_keys::table
                .inner_join(users::table)
                .filter(api_keys::expires_at.gt(now))
                .filter(api_keys::expires_at.le(now + within))
                .filter(api_keys::retires_at.is_null())
                .select((
                    api_keys::id,
                    api_keys::name,
                    api_keys::prefix,
                    api_keys::expires_at,
                    User::as_select(),
                ))
                .load::<(String, String, String, Option<NaiveDateTime>, User)>(conn)
        };
        for (days, kind) in [(7, "expires in 7 days"), (1, "expires in 1 day")] {
            for (id, name, prefix, at, user) in keys(conn, Duration::days(days))? {
                let claim = format!("expiry-{days}d:{id}");
                due.push(Due {
                    claim,
                    user,
                    name,
                    prefix,
                    at: at.unwrap_or(now),
                    kind,
                });
            }
        }
        let retiring = api_keys::table
            .inner_join(users::table)
            .filter(api_keys::retires_at.gt(now))
            .filter(api_keys::retires_at.le(now + Duration::hours(1)))
            .select((
                api_keys::id,
                api_keys::name,
                api_keys::prefix,
                api_keys::retires_at,
                api_keys::last_used_at,
                User::as_select(),
            ))
            .load::<(
                String,
                String,
                String,
                Option<NaiveDateTime>,
                Option<NaiveDateTime>,
                User,
            )>(conn)?;
        for (id, name, prefix, retires, used, user) in retiring {
            let retires = retires.unwrap_or(now);
            if used.is_some_and(|u| u >= retires - Duration::hours(1)) {
                due.push(Due {
                    claim: format!("retiring-used:{id}"),
                    user,
                    name,
                    prefix,
                    at: retires,
                    kind: "retiring",
                });
            }
        }
        // Claimed here, before sending: a second instance finds them taken.
        let mut mine = Vec::new();
        for d in due {
            // The 7-day mail is not sent when the 1-day one is already due.
            if d.kind == "expires in 7 days" && d.at <= now + Duration::days(1) {
                continue;
            }
            if claim_once(conn, &d.claim, now)? {
                mine.push(d);
            }
        }
        Ok(mine)
    })
    .await?;
    let n = due.len();
    for d in due {
        let (what, subject, advice) = if d.kind == "retiring" {
            (
                "A retiring API key is still being used",
                "A retiring Keyward API key is still in use",
                "It stops working at the time below. Move the programs that still use it to its new key now.",
            )
        } else if d.kind == "expires in 1 day" {
            (
                "An API key expires tomorrow",
                "A Keyward API key expires tomorrow",
                "Rotate it to get a new key with the same name and scopes, then move your programs to it.",
            )
        } else {
            (
                "An API key expires in 7 days",
                "A Keyward API key expires in 7 days",
                "Rotate it to get a new key with the same name and scopes, then move your programs to it.",
            )
        };
        let extra = Some(format!("Stops:    {}", when(d.at)));
        send(
            state,
            &d.user,
            subject,
            KeyMail {
                username: &d.user.username,
                what,
                name: &d.name,
                prefix: &d.prefix,
                when: when(now),
                address: "-",
                extra,
                advice,
                base: state.settings.base_url(),
            },
        );
    }
    Ok(n)
}

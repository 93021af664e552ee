//! Prompt revocation across instances on PostgreSQL.
//!
//! Deleting a key sends `NOTIFY keyward_key_revoked, '<key id>'` in the
//! deleting transaction, so it is delivered exactly when the delete commits.
//! Every instance keeps one extra connection that `LISTEN`s and drops the
//! key from its in-memory state within about 100 ms. If that connection
//! breaks, notifications may be missed while it is down, so after
//! reconnecting the listener asks for *everything* to be forgotten; the
//! verify cache's short TTL bounds staleness even while the database is away.
//! On SQLite there is one instance per file and nothing to do.

use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::sql_types::Text;
use diesel::{Connection as _, RunQueryDsl as _};

use super::DbConnection;

pub const CHANNEL: &str = "keyward_key_revoked";
const POLL: Duration = Duration::from_millis(100);

/// Announces a change to a key (deleted, edited, rotated, its owner
/// disabled) to every verifier: a row in the change feed, which every
/// process that checks keys follows (`follow`), and on PostgreSQL a NOTIFY
/// as well, which instances hear at once. Call inside the transaction that
/// makes the change, so both go out exactly when it commits.
pub fn notify_revoked(conn: &mut DbConnection, key_id: &str) -> diesel::QueryResult<()> {
    use crate::db::schema::key_changes;
    use diesel::ExpressionMethods as _;
    diesel::insert_into(key_changes::table)
        .values((key_changes::key_id.eq(key_id), key_changes::at.eq(crate::time::now())))
        .execute(conn)?;
    match conn {
        DbConnection::Postgresql(pg) => diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<Text, _>(CHANNEL)
            .bind::<Text, _>(key_id)
            .execute(pg)
            .map(|_| ()),
        DbConnection::Sqlite(_) => Ok(()),
    }
}

/// What the listener reports.
pub enum Revoked<'a> {
    /// This key was deleted somewhere.
    Key(&'a str),
    /// The listener reconnected and may have missed some: forget everything.
    Unknown,
    /// Nothing happened; a chance for the owner to stop the listener.
    Idle,
}

/// Runs the listener on its own thread until `handle` returns false (its
/// owner is gone).
pub fn spawn_listener<F>(url: String, mut handle: F) -> std::io::Result<()>
where
    F: FnMut(Revoked<'_>) -> bool + Send + 'static,
{
    std::thread::Builder::new()
        .name("keyward-revocations".into())
        .spawn(move || {
            let mut first = true;
            let mut backoff = Duration::from_millis(250);
            loop {
                let connected = PgConnection::establish(&url)
                    .map_err(|e| e.to_string())
                    .and_then(|mut c| {
                        diesel::sql_query(format!("LISTEN {CHANNEL}"))
                            .execute(&mut c)
                            .map(|_| c)
                            .map_err(|e| e.to_string())
                    });
                match connected {
                    Ok(mut conn) => {
                        if !first {
                            tracing::info!("revocation listener reconnected");
                            if !handle(Revoked::Unknown) {
                                return;
                            }
                        }
                        first = false;
                        backoff = Duration::from_millis(250);
                        loop {
                            let mut broken = false;
                            for n in conn.notifications_iter() {
                                match n {
                                    Ok(n) if n.channel == CHANNEL => {
                                        if !handle(Revoked::Key(&n.payload)) {
                                            return;
                                        }
                                    }
                                    Ok(_) => {}
                                    Err(e) => {
                                        tracing::warn!(error = %e, "revocation listener lost its connection");
                                        broken = true;
                                        break;
                                    }
                                }
                            }
                            if broken {
                                break;
                            }
                            // Lets the owner stop us even when nothing arrives.
                            if !handle(Revoked::Idle) {
                                return;
                            }
                            std::thread::sleep(POLL);
                        }
                    }
                    Err(e) => {
                        if first {
                            tracing::warn!(error = %e, "revocation listener cannot connect yet");
                        }
                        first = false;
                    }
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        })?;
    Ok(())
}

/// How often a follower looks for new changes.
pub const FEED_POLL: Duration = Duration::from_millis(200);

/// The newest change's number (0 for none).
pub fn feed_position(conn: &mut DbConnection) -> diesel::QueryResult<i64> {
    use crate::db::schema::key_changes;
    use diesel::QueryDsl as _;
    key_changes::table
        .select(diesel::dsl::max(key_changes::seq))
        .first::<Option<i64>>(conn)
        .map(|m| m.unwrap_or(0))
}

/// Changes after `after`, oldest first, at most `limit`.
pub fn changes_after(conn: &mut DbConnection, after: i64, limit: i64) -> diesel::QueryResult<Vec<(i64, String)>> {
    use crate::db::schema::key_changes;
    use diesel::{ExpressionMethods as _, QueryDsl as _};
    key_changes::table
        .filter(key_changes::seq.gt(after))
        .order(key_changes::seq.asc())
        .limit(limit)
        .select((key_changes::seq, key_changes::key_id))
        .load(conn)
}

/// Housekeeping: drops changes older than `before` (every follower has
/// read them long since; one that was away longer forgets everything).
pub fn prune(conn: &mut DbConnection, before: chrono::NaiveDateTime) -> diesel::QueryResult<usize> {
    use crate::db::schema::key_changes;
    use diesel::{ExpressionMethods as _, QueryDsl as _};
    diesel::delete(key_changes::table.filter(key_changes::at.lt(before))).execute(conn)
}

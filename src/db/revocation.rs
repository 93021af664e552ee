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

/// Announces a revoked key to every instance (PostgreSQL only). Call inside
/// the transaction that deletes it.
pub fn notify_revoked(conn: &mut DbConnection, key_id: &str) -> diesel::QueryResult<()> {
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

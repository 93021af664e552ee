//! Instances announce themselves: each running `keyward serve` keeps a row
//! here, refreshed every `HEARTBEAT` and removed when it stops cleanly.
//! `keyward check` lists the rows seen within `LIVE` (docs/instances.md);
//! rows of instances that died are pruned after an hour.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::instances;
use super::DbConnection;

/// How often a running instance refreshes its row.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// A row refreshed within this is a live instance.
pub const LIVE: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// One running instance, as it announced itself.
#[derive(Queryable, Selectable, Insertable, Clone, Debug, PartialEq, Eq)]
#[diesel(table_name = instances)]
pub struct Instance {
    /// Random, new at every start.
    pub id: String,
    pub started_at: NaiveDateTime,
    pub seen_at: NaiveDateTime,
    /// Where it listens (`host:port`).
    pub address: String,
    /// The machine's host name.
    pub host: String,
    pub pid: i64,
    /// Keyward's version.
    pub version: String,
}

impl Instance {
    /// This process, listening on `address`.
    pub fn this_process(address: String, now: NaiveDateTime) -> Self {
        Self {
            id: crate::keys::format::random_base62(12),
            started_at: now,
            seen_at: now,
            address,
            host: host_name(),
            pid: i64::from(std::process::id()),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// The machine's host name, or "?" where it cannot be read.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "?".to_owned())
}

/// Refreshes this instance's row (and writes it the first time).
pub fn beat(conn: &mut DbConnection, me: &Instance, now: NaiveDateTime) -> QueryResult<()> {
    let updated = diesel::update(instances::table.find(&me.id))
        .set(instances::seen_at.eq(now))
        .execute(conn)?;
    if updated == 0 {
        let row = Instance {
            seen_at: now,
            ..me.clone()
        };
        diesel::insert_into(instances::table).values(&row).execute(conn)?;
    }
    Ok(())
}

/// This instance stops: its row goes.
pub fn leave(conn: &mut DbConnection, id: &str) -> QueryResult<usize> {
    diesel::delete(instances::table.find(id)).execute(conn)
}

/// Instances seen within `LIVE` of `now`, oldest first.
pub fn live(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<Vec<Instance>> {
    instances::table
        .filter(instances::seen_at.gt(now - LIVE))
        .order((instances::started_at.asc(), instances::id.asc()))
        .select(Instance::as_select())
        .load(conn)
}

/// Drops the rows of instances not seen since `before` (they died).
pub fn prune(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(instances::table.filter(instances::seen_at.lt(before))).execute(conn)
}

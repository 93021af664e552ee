//! The abuse limits' counts in the database (`throttle_counters`), shared
//! by every instance on it: what `throttle::Store::Database` does.
//!
//! One row per (limit, key). Every change reads its rows and writes them
//! back in one transaction, the rows locked in between (`FOR UPDATE` on
//! PostgreSQL, in a fixed order so that two instances never wait on each
//! other in a circle; SQLite has one writer at a time anyway). The rules
//! are `throttle::Failures`', the same as in memory; times are the
//! instance clock's calendar time.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::throttle::{Failures, Limit, Settle};
use crate::db::schema::throttle_counters as t;
use crate::db::{self, DbConnection, Pool};

#[derive(Queryable, Selectable, Insertable, Clone, Debug)]
#[diesel(table_name = t)]
struct Row {
    scope: String,
    key: String,
    count: i32,
    window_start: NaiveDateTime,
    locked_until: Option<NaiveDateTime>,
}

impl Row {
    fn failures(&self) -> Failures<NaiveDateTime> {
        Failures {
            count: u32::try_from(self.count).unwrap_or(0),
            window_start: self.window_start,
            locked_until: self.locked_until,
        }
    }
}

/// The rows of `items` as they are (no lock), by (scope, key).
fn read(conn: &mut DbConnection, items: &[(Limit, String)]) -> QueryResult<Vec<Row>> {
    let scopes: Vec<&str> = items.iter().map(|(l, _)| l.scope).collect();
    let keys: Vec<&str> = items.iter().map(|(_, k)| k.as_str()).collect();
    let rows: Vec<Row> = t::table
        .filter(t::scope.eq_any(&scopes))
        .filter(t::key.eq_any(&keys))
        .select(Row::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter(|r| items.iter().any(|(l, k)| l.scope == r.scope && *k == r.key))
        .collect())
}

/// The rows of `items`, created when missing (with `create`: `now` is
/// their start) and locked until the transaction ends. Call inside one.
fn lock(conn: &mut DbConnection, items: &[(Limit, String)], create: Option<NaiveDateTime>) -> QueryResult<Vec<Row>> {
    let mut wanted: Vec<(&str, &str)> = items.iter().map(|(l, k)| (l.scope, k.as_str())).collect();
    // One order for every instance and every change: no two transactions
    // wait on each other's rows in a circle.
    wanted.sort_unstable();
    wanted.dedup();
    for (scope, key) in &wanted {
        let Some(now) = create else { break };
        let fresh = (
            t::scope.eq(*scope),
            t::key.eq(*key),
            t::count.eq(0),
            t::window_start.eq(now),
            t::locked_until.eq(None::<NaiveDateTime>),
        );
        match conn {
            DbConnection::Postgresql(pg) => diesel::insert_into(t::table)
                .values(fresh)
                .on_conflict_do_nothing()
                .execute(pg)?,
            DbConnection::Sqlite(lite) => diesel::insert_into(t::table)
                .values(fresh)
                .on_conflict_do_nothing()
                .execute(lite)?,
        };
    }
    let scopes: Vec<&str> = wanted.iter().map(|(s, _)| *s).collect();
    let keys: Vec<&str> = wanted.iter().map(|(_, k)| *k).collect();
    let query = || {
        t::table
            .filter(t::scope.eq_any(&scopes))
            .filter(t::key.eq_any(&keys))
            .order((t::scope.asc(), t::key.asc()))
    };
    let rows: Vec<Row> = match conn {
        DbConnection::Postgresql(pg) => query().select(Row::as_select()).for_update().load(pg)?,
        DbConnection::Sqlite(lite) => query().select(Row::as_select()).load(lite)?,
    };
    Ok(rows
        .into_iter()
        .filter(|r| wanted.contains(&(r.scope.as_str(), r.key.as_str())))
        .collect())
}

fn write(conn: &mut DbConnection, row: &Row, f: Failures<NaiveDateTime>) -> QueryResult<()> {
    diesel::update(t::table.find((&row.scope, &row.key)))
        .set((
            t::count.eq(i32::try_from(f.count).unwrap_or(i32::MAX)),
            t::window_start.eq(f.window_start),
            t::locked_until.eq(f.locked_until),
        ))
        .execute(conn)?;
    Ok(())
}

fn limit_of<'a>(items: &'a [(Limit, String)], row: &Row) -> Option<&'a Limit> {
    items
        .iter()
        .find(|(l, k)| l.scope == row.scope && *k == row.key)
        .map(|(l, _)| l)
}

fn fail_locked(
    conn: &mut DbConnection,
    items: &[(Limit, String)],
    rows: &[Row],
    now: NaiveDateTime,
) -> QueryResult<()> {
    for row in rows {
        let Some(limit) = limit_of(items, row) else { continue };
        let mut f = row.failures();
        f.fail(now, limit);
        write(conn, row, f)?;
    }
    Ok(())
}

/// The longest wait among `items` that are locked out.
pub(crate) async fn check(
    pool: &Pool,
    items: Vec<(Limit, String)>,
    now: NaiveDateTime,
) -> anyhow::Result<Option<Duration>> {
    db::run(pool, move |conn| {
        Ok(read(conn, &items)?.iter().filter_map(|r| r.failures().wait(now)).max())
    })
    .await
}

/// Counts a failure against each of `items`.
pub(crate) async fn fail(pool: &Pool, items: Vec<(Limit, String)>, now: NaiveDateTime) -> anyhow::Result<()> {
    db::run(pool, move |conn| {
        Ok(conn.transaction(|conn| {
            let rows = lock(conn, &items, Some(now))?;
            fail_locked(conn, &items, &rows, now)
        })?)
    })
    .await
}

/// The longest wait among `items` when one is locked out (nothing is
/// counted then); otherwise counts a failure against each.
pub(crate) async fn charge(
    pool: &Pool,
    items: Vec<(Limit, String)>,
    now: NaiveDateTime,
) -> anyhow::Result<Option<Duration>> {
    db::run(pool, move |conn| {
        Ok(conn.transaction(|conn| {
            let rows = lock(conn, &items, Some(now))?;
            if let Some(wait) = rows.iter().filter_map(|r| r.failures().wait(now)).max() {
                return Ok(Some(wait));
            }
            fail_locked(conn, &items, &rows, now)?;
            diesel::QueryResult::Ok(None)
        })?)
    })
    .await
}

/// What a success does: clears some counts, refunds others (rows that
/// do not exist are left so).
pub(crate) async fn settle(pool: &Pool, items: Vec<(Limit, String, Settle)>) -> anyhow::Result<()> {
    db::run(pool, move |conn| {
        Ok(conn.transaction(|conn| {
            let keys: Vec<(Limit, String)> = items.iter().map(|(l, k, _)| (*l, k.clone())).collect();
            for row in lock(conn, &keys, None)? {
                let Some((limit, _, how)) = items.iter().find(|(l, k, _)| l.scope == row.scope && *k == row.key) else {
                    continue;
                };
                match how {
                    Settle::Clear => {
                        diesel::delete(t::table.find((&row.scope, &row.key))).execute(conn)?;
                    }
                    Settle::Refund => {
                        let mut f = row.failures();
                        f.refund(limit);
                        write(conn, &row, f)?;
                    }
                }
            }
            diesel::QueryResult::Ok(())
        })?)
    })
    .await
}

/// Counts one event of a rate limit; false (nothing counted) when the
/// limit is reached.
pub(crate) async fn take(pool: &Pool, limit: Limit, key: String, now: NaiveDateTime) -> anyhow::Result<bool> {
    db::run(pool, move |conn| {
        Ok(conn.transaction(|conn| {
            let items = [(limit, key)];
            let mut allowed = false;
            for row in lock(conn, &items, Some(now))? {
                let mut f = row.failures();
                allowed = f.take(now, &limit);
                write(conn, &row, f)?;
            }
            diesel::QueryResult::Ok(allowed)
        })?)
    })
    .await
}

/// Drops the rows whose window began before `before` and whose lock-out,
/// if any, has ended by `now` (housekeeping, hourly).
pub fn prune(conn: &mut DbConnection, before: NaiveDateTime, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(
        t::table
            .filter(t::window_start.lt(before))
            .filter(t::locked_until.is_null().or(t::locked_until.le(now))),
    )
    .execute(conn)
}

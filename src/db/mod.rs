//! The database: backend choice by URL, the connection pool, embedded
//! migrations and per-connection SQLite settings.
//!
//! Both backends go through one `MultiConnection`, so every query in the
//! domain modules is written once.

pub mod copy;
pub mod instances;
pub mod revocation;
pub mod schema;

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{self, ManageConnection};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, ExpressionMethods, QueryDsl, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

pub type Pool = r2d2::Pool<Manager>;
pub type PooledConn = r2d2::PooledConnection<Manager>;

/// Where the data lives. Chosen once from `DATABASE_URL`: a `postgres://` or
/// `postgresql://` URL selects PostgreSQL, anything else is a SQLite path.
#[derive(Clone)]
pub enum DatabaseUrl {
    Postgres(String),
    Sqlite(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Self {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::Postgres(url.to_owned())
        } else {
            let path = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .unwrap_or(url);
            Self::Sqlite(path.to_owned())
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// A description safe for logs: no user, no password, and no query
    /// string (libpq takes `?password=…` there too).
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(p) => format!("sqlite:{p}"),
            Self::Postgres(u) => {
                let (base, query) = match u.split_once('?') {
                    Some((base, _)) => (base, "?…"),
                    None => (u.as_str(), ""),
                };
                match (base.find("://"), base.rfind('@')) {
                    (Some(s), Some(at)) if at > s => format!("{}://…@{}{query}", &base[..s], &base[at + 1..]),
                    _ => format!("{base}{query}"),
                }
            }
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// SQLite settings applied to every new connection: WAL lets readers run
/// beside the single writer, and the busy timeout makes concurrent writers
/// wait instead of failing with "database is locked". Each pooled
/// connection keeps its own page cache: 128 KiB each rather than SQLite's
/// 2 MiB default (8 connections would hold 16 MiB, a quarter of the memory
/// budget, of pages the operating system caches anyway; a lookup among
/// 100k keys reads a handful of pages).
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -128;";

/// Opens connections for the backend picked from the URL, never guessing:
/// a PostgreSQL outage must not silently fall back to a SQLite file.
pub struct Manager {
    url: DatabaseUrl,
}

impl Manager {
    pub fn new(url: DatabaseUrl) -> Self {
        Self { url }
    }
}

impl ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        match &self.url {
            DatabaseUrl::Postgres(u) => PgConnection::establish(u)
                .map(DbConnection::Postgresql)
                .map_err(r2d2::Error::ConnectionError),
            DatabaseUrl::Sqlite(p) => {
                let mut c = SqliteConnection::establish(p).map_err(r2d2::Error::ConnectionError)?;
                c.batch_execute(SQLITE_PRAGMAS).map_err(r2d2::Error::QueryError)?;
                Ok(DbConnection::Sqlite(c))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        diesel::sql_query("SELECT 1")
            .execute(conn)
            .map(|_| ())
            .map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, _conn: &mut DbConnection) -> bool {
        false
    }
}

/// The settings of the connection that migrates a SQLite database: as
/// every connection's, but with foreign keys off, as SQLite asks for
/// schema changes that rebuild a table (the check runs after).
const SQLITE_MIGRATION_PRAGMAS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF;";

/// Applies pending migrations for the backend. Runs on a plain connection
/// of the concrete backend so each gets its own migration directory.
pub fn run_migrations(url: &DatabaseUrl) -> anyhow::Result<()> {
    match url {
        DatabaseUrl::Sqlite(p) => {
            ensure_parent_dir(p)?;
            create_private(Path::new(p))?;
            let mut c = SqliteConnection::establish(p).with_context(|| format!("cannot open SQLite database {p}"))?;
            c.batch_execute(SQLITE_MIGRATION_PRAGMAS)
                .with_context(|| format!("cannot set up SQLite database {p}"))?;
            c.run_pending_migrations(SQLITE_MIGRATIONS)
                .map_err(|e| anyhow::anyhow!("SQLite migrations of {p} failed: {e}"))?;
            let broken: Vec<ForeignKeyProblem> = diesel::sql_query("PRAGMA foreign_key_check")
                .load(&mut c)
                .with_context(|| format!("cannot check foreign keys in {p}"))?;
            anyhow::ensure!(
                broken.is_empty(),
                "{p}: {} rows point at rows that do not exist after migrating",
                broken.len()
            );
        }
        DatabaseUrl::Postgres(u) => {
            let mut c = PgConnection::establish(u).with_context(|| format!("cannot connect to {}", url.redacted()))?;
            c.run_pending_migrations(POSTGRES_MIGRATIONS)
                .map_err(|e| anyhow::anyhow!("PostgreSQL migrations of {} failed: {e}", url.redacted()))?;
        }
    }
    Ok(())
}

/// The migrations applied to the database and those still pending, by
/// name, without applying any (`keyward check`).
pub fn migration_status(url: &DatabaseUrl) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    fn names<DB: diesel::backend::Backend>(
        c: &mut impl MigrationHarness<DB>,
        source: EmbeddedMigrations,
    ) -> anyhow::Result<(Vec<String>, Vec<String>)> {
        let applied = c
            .applied_migrations()
            .map_err(|e| anyhow::anyhow!("cannot read the applied migrations: {e}"))?
            .iter()
            .map(|v| v.to_string())
            .collect();
        let pending = c
            .pending_migrations(source)
            .map_err(|e| anyhow::anyhow!("cannot read the pending migrations: {e}"))?
            .iter()
            .map(|m| m.name().to_string())
            .collect();
        Ok((applied, pending))
    }
    match url {
        DatabaseUrl::Sqlite(p) => {
            anyhow::ensure!(Path::new(p).exists(), "no SQLite database at {p}");
            let mut c = SqliteConnection::establish(p).with_context(|| format!("cannot open SQLite database {p}"))?;
            names(&mut c, SQLITE_MIGRATIONS)
        }
        DatabaseUrl::Postgres(u) => {
            let mut c = PgConnection::establish(u).with_context(|| format!("cannot connect to {}", url.redacted()))?;
            names(&mut c, POSTGRES_MIGRATIONS)
        }
    }
}

/// A row of `PRAGMA foreign_key_check` (only counted).
#[derive(diesel::QueryableByName)]
struct ForeignKeyProblem {
    #[diesel(sql_type = diesel::sql_types::Text)]
    #[allow(dead_code)]
    table: String,
}

/// Creates the SQLite file, empty and readable by its owner only, before
/// SQLite does: SQLite gives its `-wal` and `-shm` files the database
/// file's mode, so all three stay private whatever the umask.
fn create_private(path: &Path) -> anyhow::Result<()> {
    if path.as_os_str().is_empty() || path.to_str() == Some(":memory:") || path.exists() {
        return Ok(());
    }
    match crate::files::private_new_file().open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot create SQLite database {}", path.display())),
    }
}

fn ensure_parent_dir(path: &str) -> anyhow::Result<()> {
    if let Some(parent) = Path::new(path).parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
    }
    Ok(())
}

/// Migrates, then builds the pool: what the Keyward binary does when it
/// starts (the server and every command).
pub fn migrate_and_connect(url: &DatabaseUrl) -> anyhow::Result<Pool> {
    run_migrations(url)?;
    connect(url)
}

/// Builds the pool, leaving the schema alone: for a service that embeds the
/// guard beside a Keyward that owns (and migrates) the database.
pub fn connect(url: &DatabaseUrl) -> anyhow::Result<Pool> {
    let size = match url {
        DatabaseUrl::Sqlite(_) => 8,
        DatabaseUrl::Postgres(_) => 16,
    };
    r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        // While the database is away, answer 503 after a few seconds
        // rather than holding requests for long.
        .connection_timeout(Duration::from_secs(3))
        .build(Manager::new(url.clone()))
        .with_context(|| format!("cannot open the database {}", url.redacted()))
}

/// No connection could be had: the database is down or unreachable.
/// Callers answer 503, not 500: it is nobody's mistake and it passes.
#[derive(Debug, thiserror::Error)]
#[error("the database is unavailable")]
pub struct Unavailable;

/// Runs blocking diesel work off the async executor, taking the pooled
/// connection inside the closure so a waiting request holds no connection.
pub async fn run<T, F>(pool: &Pool, f: F) -> anyhow::Result<T>
where
    F: FnOnce(&mut DbConnection) -> anyhow::Result<T> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get().map_err(|e| {
            tracing::warn!(error = %e, "no database connection available");
            anyhow::Error::new(Unavailable)
        })?;
        f(&mut conn)
    })
    .await
    .context("blocking task failed")?
}

/// Rewrites the health-probe row: fails when the database takes no writes
/// (a full disk, a read-only file system, a damaged file).
pub fn write_probe(conn: &mut DbConnection) -> diesel::QueryResult<()> {
    use schema::health_probe::dsl::*;
    let now = crate::time::now();
    if diesel::update(health_probe.find(1_i64))
        .set(checked_at.eq(now))
        .execute(conn)?
        == 0
    {
        diesel::insert_into(health_probe)
            .values((id.eq(1_i64), checked_at.eq(now)))
            .execute(conn)?;
    }
    Ok(())
}

/// True when a diesel error is a unique-constraint violation.
pub fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

#[cfg(test)]
mod tests {
    use super::DatabaseUrl;

    #[test]
    fn a_redacted_url_shows_no_credentials_wherever_they_are() {
        let shown = |u: &str| DatabaseUrl::Postgres(u.to_owned()).redacted();
        assert_eq!(
            shown("postgres://u:s3cret@db.example/keys"),
            "postgres://…@db.example/keys"
        );
        assert_eq!(
            shown("postgres://db.example/keys?user=u&password=s3cret"),
            "postgres://db.example/keys?…"
        );
        assert_eq!(
            shown("postgres://u@db.example/keys?password=s3cret"),
            "postgres://…@db.example/keys?…"
        );
        assert_eq!(
            shown("postgres://u:p@ss@db.example/keys"),
            "postgres://…@db.example/keys"
        );
        assert_eq!(shown("postgres://db.example/keys"), "postgres://db.example/keys");
    }
}

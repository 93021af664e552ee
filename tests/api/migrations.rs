//! Upgrading a database made by an older version keeps every row.

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use diesel_migrations::MigrationHarness as _;
use keyward::db::{self, DatabaseUrl};

#[test]
fn the_email_migration_keeps_users_keys_and_sessions_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let path = path.to_str().unwrap();
    {
        // The schema of the first release, with a user, a key and a session.
        let mut c = SqliteConnection::establish(path).unwrap();
        c.run_next_migration(db::SQLITE_MIGRATIONS).unwrap();
        c.batch_execute(
            "PRAGMA foreign_keys = ON;
             INSERT INTO users (id, username, email, password_hash, created_at)
                 VALUES (7, 'alice', 'alice@example.com', 'h', '2026-11-01 00:00:00');
             INSERT INTO api_keys (id, user_id, name, prefix, digest, scopes, created_at)
                 VALUES ('AbCdEfGh', 7, 'ci', 'kw_AbCdEfGh', x'00', 'read', '2026-11-01 00:00:00');
             INSERT INTO user_sessions (id, user_id, created_at) VALUES (x'01', 7, '2026-11-01 00:00:00');",
        )
        .unwrap();
    }

    db::run_migrations(&DatabaseUrl::Sqlite(path.to_owned())).unwrap();

    let mut c = SqliteConnection::establish(path).unwrap();
    c.batch_execute("PRAGMA foreign_keys = ON").unwrap();
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let count = |c: &mut SqliteConnection, sql: &str| diesel::sql_query(sql).get_result::<Count>(c).unwrap().n;
    assert_eq!(count(&mut c, "SELECT count(*) AS n FROM users WHERE id = 7"), 1);
    assert_eq!(count(&mut c, "SELECT count(*) AS n FROM api_keys WHERE user_id = 7"), 1);
    assert_eq!(
        count(&mut c, "SELECT count(*) AS n FROM user_sessions WHERE user_id = 7"),
        1
    );
    // Addresses may now repeat; names still may not.
    c.batch_execute(
        "INSERT INTO users (username, email, password_hash, created_at)
             VALUES ('bob', 'alice@example.com', 'h', '2026-11-02 00:00:00')",
    )
    .unwrap();
    assert!(c
        .batch_execute(
            "INSERT INTO users (username, email, password_hash, created_at)
                 VALUES ('alice', 'x@example.com', 'h', '2026-11-02 00:00:00')",
        )
        .is_err());
    // And deleting a user still takes their keys and sessions with it.
    c.batch_execute("DELETE FROM users WHERE id = 7").unwrap();
    assert_eq!(count(&mut c, "SELECT count(*) AS n FROM api_keys"), 0);
    assert_eq!(count(&mut c, "SELECT count(*) AS n FROM user_sessions"), 0);
}

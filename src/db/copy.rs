//! `keyward db copy --to postgres://…`: moves an existing SQLite install to
//! PostgreSQL. Users (with their password hashes), keys (prefix and digest,
//! so every existing key keeps working) and pending reset tokens are copied
//! in one target transaction; browser sessions are not (people log in
//! again). The target must be empty, and row counts are verified.

use anyhow::Context as _;
use chrono::NaiveDateTime;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use super::schema::{api_keys, password_reset_tokens as tokens, users};
use super::{run_migrations, DatabaseUrl};

#[derive(Queryable, Insertable)]
#[diesel(table_name = users)]
struct UserRow {
    id: i64,
    username: String,
    email: String,
    password_hash: String,
    created_at: NaiveDateTime,
    totp_secret: Option<Vec<u8>>,
    totp_last_step: Option<i64>,
    is_admin: bool,
    disabled_at: Option<NaiveDateTime>,
}

#[derive(Queryable, Insertable)]
#[diesel(table_name = api_keys)]
struct KeyRow {
    id: String,
    user_id: i64,
    name: String,
    prefix: String,
    digest: Vec<u8>,
    scopes: String,
    created_at: NaiveDateTime,
    last_used_at: Option<NaiveDateTime>,
    expires_at: Option<NaiveDateTime>,
    retires_at: Option<NaiveDateTime>,
    last_used_address: Option<String>,
    allowed_ips: String,
    rate_limit_per_minute: Option<i32>,
}

#[derive(Queryable, Insertable)]
#[diesel(table_name = tokens)]
struct TokenRow {
    digest: Vec<u8>,
    user_id: i64,
    created_at: NaiveDateTime,
    expires_at: NaiveDateTime,
}

/// Row counts copied: (users, keys, reset tokens).
#[derive(Debug, PartialEq, Eq)]
pub struct Copied {
    pub users: i64,
    pub keys: i64,
    pub reset_tokens: i64,
}

pub fn copy_sqlite_to_postgres(from: &DatabaseUrl, to: &DatabaseUrl) -> anyhow::Result<Copied> {
    let (DatabaseUrl::Sqlite(src), DatabaseUrl::Postgres(dst)) = (from, to) else {
        anyhow::bail!("db copy moves a SQLite database (DATABASE_URL) to PostgreSQL (--to postgres://…)");
    };
    anyhow::ensure!(std::path::Path::new(src).exists(), "no SQLite database at {src}");
    run_migrations(from)?;
    run_migrations(to)?;
    let mut source = SqliteConnection::establish(src).with_context(|| format!("cannot open {src}"))?;
    let mut target = PgConnection::establish(dst).with_context(|| format!("cannot connect to {}", to.redacted()))?;

    let user_rows: Vec<UserRow> = users::table.order(users::id).load(&mut source)?;
    let key_rows: Vec<KeyRow> = api_keys::table.order(api_keys::id).load(&mut source)?;
    let token_rows: Vec<TokenRow> = tokens::table.load(&mut source)?;
    let want = Copied {
        users: user_rows.len() as i64,
        keys: key_rows.len() as i64,
        reset_tokens: token_rows.len() as i64,
    };

    target.transaction::<_, anyhow::Error, _>(|t| {
        let existing: i64 = users::table.count().get_result(t)?;
        let existing_keys: i64 = api_keys::table.count().get_result(t)?;
        anyhow::ensure!(
            existing == 0 && existing_keys == 0,
            "the target database is not empty ({existing} users, {existing_keys} keys): refusing to overwrite it"
        );
        for chunk in user_rows.chunks(1000) {
            diesel::insert_into(users::table).values(chunk).execute(t)?;
        }
        for chunk in key_rows.chunks(1000) {
            diesel::insert_into(api_keys::table).values(chunk).execute(t)?;
        }
        for chunk in token_rows.chunks(1000) {
            diesel::insert_into(tokens::table).values(chunk).execute(t)?;
        }
        // Ids were copied as they were: move the sequence past them.
        diesel::sql_query(
            "SELECT setval(pg_get_serial_sequence('users', 'id'), COALESCE((SELECT MAX(id) FROM users), 0) + 1, false)",
        )
        .execute(t)?;
        let got = Copied {
            users: users::table.count().get_result(t)?,
            keys: api_keys::table.count().get_result(t)?,
            reset_tokens: tokens::table.count().get_result(t)?,
        };
        anyhow::ensure!(
            got == want,
            "row counts differ after copying: source {want:?}, target {got:?}"
        );
        Ok(())
    })?;
    Ok(want)
}

//! The `users` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::users;
use crate::db::DbConnection;

#[derive(Queryable, Selectable, Clone)]
#[diesel(table_name = users)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub created_at: NaiveDateTime,
    /// The TOTP secret, encrypted (`accounts::totp`); `None` without 2FA.
    pub totp_secret: Option<Vec<u8>>,
    /// The last time step whose code was accepted: a code works once.
    pub totp_last_step: Option<i64>,
    pub is_admin: bool,
    /// Set by an admin: the user cannot log in and their keys are refused.
    pub disabled_at: Option<NaiveDateTime>,
}

impl User {
    pub fn has_2fa(&self) -> bool {
        self.totp_secret.is_some()
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub created_at: NaiveDateTime,
}

pub fn create(conn: &mut DbConnection, new: &NewUser<'_>) -> QueryResult<User> {
    diesel::insert_into(users::table).values(new).execute(conn)?;
    find_by_username(conn, new.username)?.ok_or(diesel::result::Error::NotFound)
}

pub fn find_by_username(conn: &mut DbConnection, name: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::username.eq(name))
        .select(User::as_select())
        .first(conn)
        .optional()
}

/// Every account with this address (addresses are not unique; at most a
/// handful share one).
pub fn find_by_email(conn: &mut DbConnection, email: &str) -> QueryResult<Vec<User>> {
    users::table
        .filter(users::email.eq(email))
        .order(users::id.asc())
        .limit(20)
        .select(User::as_select())
        .load(conn)
}

pub fn find_by_id(conn: &mut DbConnection, id: i64) -> QueryResult<Option<User>> {
    users::table.find(id).select(User::as_select()).first(conn).optional()
}

pub fn set_password_hash(conn: &mut DbConnection, id: i64, hash: &str) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set(users::password_hash.eq(hash))
        .execute(conn)
}

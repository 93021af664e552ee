-- Email addresses are no longer unique: registration must not tell anyone
-- which addresses have an account (docs/accounts.md). SQLite cannot drop a
-- column constraint, so the table is rebuilt; migrations run with foreign
-- keys off (db::run_migrations), so the rows that point at users stay.
CREATE TABLE users_new (
    id INTEGER PRIMARY KEY NOT NULL,
    username TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
INSERT INTO users_new (id, username, email, password_hash, created_at)
    SELECT id, username, email, password_hash, created_at FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
CREATE INDEX users_email ON users(email);

-- A row the health check rewrites to prove the database takes writes.
CREATE TABLE health_probe (
    id INTEGER PRIMARY KEY NOT NULL,
    checked_at TIMESTAMP NOT NULL
);
INSERT INTO health_probe (id, checked_at) VALUES (1, CURRENT_TIMESTAMP);

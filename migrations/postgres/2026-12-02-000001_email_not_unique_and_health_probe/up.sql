-- Email addresses are no longer unique: registration must not tell anyone
-- which addresses have an account (docs/accounts.md).
ALTER TABLE users DROP CONSTRAINT users_email_key;
CREATE INDEX users_email ON users(email);

-- A row the health check rewrites to prove the database takes writes.
CREATE TABLE health_probe (
    id BIGINT PRIMARY KEY,
    checked_at TIMESTAMP NOT NULL
);
INSERT INTO health_probe (id, checked_at) VALUES (1, now() AT TIME ZONE 'utc');

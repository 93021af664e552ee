-- The secret that signs and encrypts session cookies (and seals TOTP
-- secrets), shared by every instance on this database (docs/instances.md).
CREATE TABLE instance_secrets (
    name TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

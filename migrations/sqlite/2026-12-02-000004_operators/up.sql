-- Operators (docs/operators.md): admins, disabled accounts, and the key
-- policy (one row).
ALTER TABLE users ADD COLUMN is_admin BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN disabled_at TIMESTAMP;
CREATE TABLE key_policy (
    id INTEGER PRIMARY KEY NOT NULL,
    max_key_lifetime_days INTEGER
);
INSERT INTO key_policy (id, max_key_lifetime_days) VALUES (1, NULL);

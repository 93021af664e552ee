-- The change feed every verifier follows (docs/instances.md): one row per
-- change that affects verification, written in the change's transaction.
CREATE TABLE key_changes (
    seq BIGSERIAL PRIMARY KEY,
    key_id TEXT NOT NULL,
    at TIMESTAMP NOT NULL
);

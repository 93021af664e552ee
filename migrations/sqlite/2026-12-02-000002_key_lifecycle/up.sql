-- Key lifecycle and restrictions (docs/keys.md). A rotated key keeps its
-- name while it retires, so names are unique among active keys only: the
-- table is rebuilt without its UNIQUE (user_id, name) (migrations run with
-- foreign keys off, see db::run_migrations).
CREATE TABLE api_keys_new (
    id TEXT PRIMARY KEY NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    digest BLOB NOT NULL,
    scopes TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    expires_at TIMESTAMP,
    retires_at TIMESTAMP,
    last_used_address TEXT,
    allowed_ips TEXT NOT NULL DEFAULT '',
    rate_limit_per_minute INTEGER
);
INSERT INTO api_keys_new (id, user_id, name, prefix, digest, scopes, created_at, last_used_at, expires_at)
    SELECT id, user_id, name, prefix, digest, scopes, created_at, last_used_at, expires_at FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_new RENAME TO api_keys;
CREATE INDEX api_keys_user_id ON api_keys(user_id, created_at);
CREATE UNIQUE INDEX api_keys_active_name ON api_keys(user_id, name) WHERE retires_at IS NULL;

-- Accepted calls per key and hour, written by the last-used flush.
CREATE TABLE key_usage (
    key_id TEXT NOT NULL,
    hour TIMESTAMP NOT NULL,
    calls BIGINT NOT NULL,
    PRIMARY KEY (key_id, hour)
);

-- The scopes a key was checked for, and when last.
CREATE TABLE key_scope_use (
    key_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    last_used_at TIMESTAMP NOT NULL,
    PRIMARY KEY (key_id, scope)
);

-- Security events, shown to their user (and to admins).
CREATE TABLE activity_events (
    id INTEGER PRIMARY KEY NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    at TIMESTAMP NOT NULL,
    address TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT '',
    key_prefix TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX activity_events_user ON activity_events(user_id, id);
CREATE INDEX activity_events_at ON activity_events(at);

-- Mails that must go out once whatever restarts or instances happen: the
-- sender inserts the claim first, and only the one that succeeds sends.
CREATE TABLE mail_claims (
    claim TEXT PRIMARY KEY NOT NULL,
    claimed_at TIMESTAMP NOT NULL
);

-- Key lifecycle and restrictions (docs/keys.md). A rotated key keeps its
-- name while it retires, so names are unique among active keys only.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_user_id_name_key;
ALTER TABLE api_keys ADD COLUMN retires_at TIMESTAMP;
ALTER TABLE api_keys ADD COLUMN last_used_address TEXT;
ALTER TABLE api_keys ADD COLUMN allowed_ips TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN rate_limit_per_minute INTEGER;
CREATE INDEX api_keys_user_id ON api_keys(user_id, created_at);
CREATE UNIQUE INDEX api_keys_active_name ON api_keys(user_id, name) WHERE retires_at IS NULL;

CREATE TABLE key_usage (
    key_id TEXT NOT NULL,
    hour TIMESTAMP NOT NULL,
    calls BIGINT NOT NULL,
    PRIMARY KEY (key_id, hour)
);

CREATE TABLE key_scope_use (
    key_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    last_used_at TIMESTAMP NOT NULL,
    PRIMARY KEY (key_id, scope)
);

CREATE TABLE activity_events (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    at TIMESTAMP NOT NULL,
    address TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT '',
    key_prefix TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX activity_events_user ON activity_events(user_id, id);
CREATE INDEX activity_events_at ON activity_events(at);

CREATE TABLE mail_claims (
    claim TEXT PRIMARY KEY,
    claimed_at TIMESTAMP NOT NULL
);

DROP TABLE mail_claims;
DROP TABLE activity_events;
DROP TABLE key_scope_use;
DROP TABLE key_usage;
CREATE TABLE api_keys_old (
    id TEXT PRIMARY KEY NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    digest BLOB NOT NULL,
    scopes TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    expires_at TIMESTAMP,
    UNIQUE (user_id, name)
);
INSERT INTO api_keys_old (id, user_id, name, prefix, digest, scopes, created_at, last_used_at, expires_at)
    SELECT id, user_id, name, prefix, digest, scopes, created_at, last_used_at, expires_at
    FROM api_keys WHERE retires_at IS NULL;
DROP TABLE api_keys;
ALTER TABLE api_keys_old RENAME TO api_keys;

-- Account security (docs/account-security.md): two-factor secrets
-- (encrypted), recovery codes (hashed), what the sessions page shows, the
-- recent-authentication time, and email-change tokens.
ALTER TABLE users ADD COLUMN totp_secret BYTEA;
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;

CREATE TABLE recovery_codes (
    digest BYTEA PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    used_at TIMESTAMP
);
CREATE INDEX recovery_codes_user_id ON recovery_codes(user_id);

ALTER TABLE user_sessions ADD COLUMN public_id TEXT NOT NULL DEFAULT '';
ALTER TABLE user_sessions ADD COLUMN address TEXT NOT NULL DEFAULT '';
ALTER TABLE user_sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
ALTER TABLE user_sessions ADD COLUMN last_seen_at TIMESTAMP;
ALTER TABLE user_sessions ADD COLUMN authenticated_at TIMESTAMP;

CREATE TABLE email_change_tokens (
    digest BYTEA PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    new_email TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX email_change_tokens_user_id ON email_change_tokens(user_id);

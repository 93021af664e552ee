DROP TABLE email_change_tokens;
DROP TABLE recovery_codes;
ALTER TABLE user_sessions DROP COLUMN authenticated_at;
ALTER TABLE user_sessions DROP COLUMN last_seen_at;
ALTER TABLE user_sessions DROP COLUMN user_agent;
ALTER TABLE user_sessions DROP COLUMN address;
ALTER TABLE user_sessions DROP COLUMN public_id;
ALTER TABLE users DROP COLUMN totp_last_step;
ALTER TABLE users DROP COLUMN totp_secret;

DROP TABLE password_reset_tokens;
DROP TABLE api_keys;
DROP TABLE user_sessions;
DROP TABLE users;

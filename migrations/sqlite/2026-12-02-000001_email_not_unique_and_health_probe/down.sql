DROP TABLE health_probe;
CREATE TABLE users_old (
    id INTEGER PRIMARY KEY NOT NULL,
    username TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
INSERT INTO users_old (id, username, email, password_hash, created_at)
    SELECT id, username, email, password_hash, created_at FROM users;
DROP TABLE users;
ALTER TABLE users_old RENAME TO users;

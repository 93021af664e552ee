DROP TABLE health_probe;
DROP INDEX users_email;
ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);

-- Counts changes of an account's password or e-mail address. A token carries the count
-- it was issued under; the gateway refuses one whose count is no longer the account's.
ALTER TABLE users ADD COLUMN credentials_version INTEGER NOT NULL DEFAULT 0;

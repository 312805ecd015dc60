-- A registration giving an address another account already uses is kept (flagged, outside the unique index) so that the registrant gets the same answer as with a new address (issue 8: no membership oracle).
ALTER TABLE users ADD COLUMN email_conflict boolean NOT NULL DEFAULT false;
DROP INDEX users_email_key;
CREATE UNIQUE INDEX users_email_key ON users (lower(email)) WHERE NOT email_conflict;

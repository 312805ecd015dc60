-- Open moderation: a removed post keeps the charter rule and the reason shown on its tombstone; a suspension its reason shown to the member; members opt in to the directory.

ALTER TABLE posts ADD COLUMN removal_rule smallint CHECK (removal_rule BETWEEN 0 AND 20);
ALTER TABLE posts ADD COLUMN removal_reason text NOT NULL DEFAULT '' CHECK (length(removal_reason) <= 500);
ALTER TABLE users ADD COLUMN suspension_reason text NOT NULL DEFAULT '' CHECK (length(suspension_reason) <= 1000);
ALTER TABLE users ADD COLUMN in_directory boolean NOT NULL DEFAULT false;
CREATE INDEX users_directory ON users (lower(display_name)) WHERE in_directory AND status = 'approved';

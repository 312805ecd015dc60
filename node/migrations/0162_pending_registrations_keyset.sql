-- The moderators' queue of applications pages by keyset on (created_at, id), oldest first: a spam wave of applications costs each page what the first one does.
DROP INDEX users_pending;
CREATE INDEX users_pending ON users (created_at, id) WHERE status = 'pending';

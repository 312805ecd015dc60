-- A group's outbox pages by keyset on (created_at, id), newest threads first: a page deep in an old community costs what the first one does.
CREATE INDEX threads_community_created ON threads (community_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;

-- The member's home reads each followed community's latest threads by this index (keyset, no pinned-first order).
-- remote_author_id is included so the walk reads the index alone (a local thread needs no actor lookup).
CREATE INDEX threads_community_recent ON threads (community_id, last_activity_at DESC, id DESC)
    INCLUDE (remote_author_id) WHERE deleted_at IS NULL;

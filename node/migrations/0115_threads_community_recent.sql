-- The member's home reads each followed community's latest threads by this index (keyset, no pinned-first order).
CREATE INDEX threads_community_recent ON threads (community_id, last_activity_at DESC, id DESC)
    WHERE deleted_at IS NULL;

-- The admins' federation page lists the domains with pending follows first, a page at a time: those follows read by an index, not by a scan of every follower (issue 17).

-- Pending follows are a queue the admins empty (an instance approved, or refused); the
-- accepted ones, which grow with the federation, already have their own index.
CREATE INDEX community_followers_pending ON community_followers (actor_id) WHERE state = 'pending';

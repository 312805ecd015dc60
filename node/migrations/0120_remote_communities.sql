-- A Group on another server that our node follows is a row of communities named 'name@host'.
ALTER TABLE communities ADD COLUMN actor_id bigint UNIQUE REFERENCES actors (id);
-- actor_id NULL: ours. Remote: actor_id = the Group's actors.id, name = preferredUsername || '@' || host
-- (lowercase host), visibility 'public' or 'members' (never 'local'), created_by NULL.
ALTER TABLE communities ADD CONSTRAINT communities_remote_visibility CHECK (actor_id IS NULL OR visibility <> 'local');

-- The one follow our node sends for all its members (shared follow).
CREATE TABLE group_follows (
    community_id bigint PRIMARY KEY REFERENCES communities (id) ON DELETE CASCADE,
    follower_id bigint NOT NULL REFERENCES actors (id),  -- our instance actor, or a member's Person if the server needs one
    follow_activity_id text NOT NULL UNIQUE,
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'accepted', 'rejected')),
    requested_by bigint REFERENCES users (id) ON DELETE SET NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    decided_at timestamptz
);

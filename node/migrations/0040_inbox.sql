-- Inbox: verified incoming activities queued for the worker, remembered deletions/undos, likes, reports.

-- One row per verified, validated incoming activity (design §4: the inbox stores and
-- answers 202; a worker runs the handlers). The unique activity id makes a re-delivery
-- a no-op. States and retry delays are declared in federation/processing.py.
CREATE TABLE inbox_items (
    id bigserial PRIMARY KEY,
    activity_id text NOT NULL UNIQUE,
    activity_type text NOT NULL,
    actor_uri text NOT NULL,
    -- which inbox it arrived at: '' (shared), or the local actor's URI
    recipient text NOT NULL DEFAULT '',
    document jsonb NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'processing', 'done', 'ignored', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz,
    outcome text NOT NULL DEFAULT '',
    error text NOT NULL DEFAULT '',
    received_at timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz
);
CREATE INDEX inbox_items_due ON inbox_items (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX inbox_items_leased ON inbox_items (locked_until) WHERE status = 'processing';

-- Order tolerance: a Delete or an Undo that arrives before its target is remembered by
-- the target's id, so the late Create/Update/Follow/Like is ignored ("the first Delete wins").
CREATE TABLE remote_tombstones (
    object_id text PRIMARY KEY,
    actor_uri text NOT NULL,
    reason text NOT NULL CHECK (reason IN ('deleted', 'undone')),
    activity_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Remote actors deleted by their own Delete{actor}.
ALTER TABLE actors ADD COLUMN deleted_at timestamptz;

-- A remote editor of a remote post (post_edits.editor_id names local users only).
ALTER TABLE post_edits ADD COLUMN editor_actor_id bigint REFERENCES actors (id) ON DELETE SET NULL;

-- Likes on our posts, one per (post, actor): makes Like/Undo{Like} idempotent.
CREATE TABLE post_likes (
    post_id bigint NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    actor_id bigint NOT NULL REFERENCES actors (id) ON DELETE CASCADE,
    activity_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (post_id, actor_id)
);
CREATE UNIQUE INDEX post_likes_activity ON post_likes (activity_id) WHERE activity_id IS NOT NULL;

-- Reports (Flag) for the moderators.
CREATE TABLE reports (
    id bigserial PRIMARY KEY,
    reporter_actor_id bigint REFERENCES actors (id) ON DELETE SET NULL,
    reporter_user_id bigint REFERENCES users (id) ON DELETE SET NULL,
    activity_id text UNIQUE,
    target_ids text[] NOT NULL DEFAULT '{}',
    post_ids bigint[] NOT NULL DEFAULT '{}',
    community_id bigint REFERENCES communities (id) ON DELETE SET NULL,
    content text NOT NULL DEFAULT '',
    state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'resolved', 'dismissed')),
    created_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    resolved_by bigint REFERENCES users (id)
);
CREATE INDEX reports_open ON reports (created_at DESC) WHERE state = 'open';

-- Accept/Reject received for follows sent by this node (remote communities, next issue):
-- recorded now, matched by the Follow's id or by (follower, followed).
CREATE TABLE follow_answers (
    activity_id text PRIMARY KEY,
    answer text NOT NULL CHECK (answer IN ('accept', 'reject')),
    follow_id text,
    follower_uri text,
    followed_uri text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX follow_answers_follow ON follow_answers (follow_id);

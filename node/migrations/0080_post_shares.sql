-- Boosts (Announce) of our posts by remote actors, counted and shown (« partagé N fois »), one per (post, actor).

CREATE TABLE post_shares (
    post_id bigint NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    actor_id bigint NOT NULL REFERENCES actors (id) ON DELETE CASCADE,
    activity_id text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (post_id, actor_id)
);
CREATE INDEX post_shares_actor ON post_shares (actor_id);
ALTER TABLE posts ADD COLUMN shares_count integer NOT NULL DEFAULT 0;

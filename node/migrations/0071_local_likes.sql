-- Likes by local members go to post_likes too (user_id instead of actor_id), so one count covers both.

-- The primary key (post_id, actor_id) becomes two unique indexes: one like per (post,
-- remote actor) and one per (post, local member). ON CONFLICT DO NOTHING in the inbox
-- handler (federation/handlers/like.py) works with either.
ALTER TABLE post_likes DROP CONSTRAINT post_likes_pkey;
ALTER TABLE post_likes ALTER COLUMN actor_id DROP NOT NULL;
ALTER TABLE post_likes ADD COLUMN user_id bigint REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE post_likes ADD CONSTRAINT post_likes_one_liker CHECK ((actor_id IS NULL) <> (user_id IS NULL));
CREATE UNIQUE INDEX post_likes_post_actor ON post_likes (post_id, actor_id);
CREATE UNIQUE INDEX post_likes_post_user ON post_likes (post_id, user_id);
-- Removing an actor's likes (Delete{actor}) finds them without a scan.
CREATE INDEX post_likes_actor ON post_likes (actor_id) WHERE actor_id IS NOT NULL;

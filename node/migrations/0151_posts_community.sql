-- Each post carries its thread's community, so search tests what a viewer may read on the post itself (issue 17).

-- Kept by triggers for every writer (forum services, federation inbox, backfill): a post
-- takes its thread's community when written, and would follow its thread if the thread
-- ever changed community (no code path does so today).
CREATE FUNCTION posts_community() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.community_id := (SELECT community_id FROM public.threads WHERE id = NEW.thread_id);
    RETURN NEW;
END
$$;

CREATE FUNCTION threads_community_posts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE public.posts SET community_id = NEW.community_id WHERE thread_id = NEW.id;
    RETURN NULL;
END
$$;

-- The backfill rewrites the table once through ALTER … TYPE … USING (24 s at 1,200,000
-- posts, indexes rebuilt in bulk) instead of an UPDATE … FROM (43 s: a new entry in every
-- index, the GIN one included, for each row). A USING expression may not hold a
-- subquery, hence the helper function, dropped afterwards.
SET LOCAL maintenance_work_mem = '256MB';
CREATE FUNCTION pg_temp.thread_community(thread bigint) RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT community_id FROM public.threads WHERE id = thread
$$;
ALTER TABLE posts ADD COLUMN community_id bigint;
ALTER TABLE posts ALTER COLUMN community_id SET DATA TYPE bigint USING pg_temp.thread_community(thread_id);
ALTER TABLE posts ALTER COLUMN community_id SET NOT NULL;
DROP FUNCTION pg_temp.thread_community(bigint);

CREATE TRIGGER posts_community BEFORE INSERT OR UPDATE OF thread_id ON posts
    FOR EACH ROW EXECUTE FUNCTION posts_community();
CREATE TRIGGER threads_community_posts AFTER UPDATE OF community_id ON threads
    FOR EACH ROW WHEN (OLD.community_id IS DISTINCT FROM NEW.community_id)
    EXECUTE FUNCTION threads_community_posts();

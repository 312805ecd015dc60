-- Thread reply counts and last activity over shown posts only: replies of hidden authors (suspended instances) do not count, recomputed when an actor's hidden flag changes.

-- Writers keep threads.reply_count (replies not deleted) and threads.last_activity_at
-- (when the last reply came, deleted or not) up to date as they go (node.threads,
-- federation.handlers.content/delete). A reply whose author is hidden (actors.hidden,
-- migration 0070) is shown to nobody, so it must count for neither. Two triggers keep
-- that true: one recomputes the threads of an actor whose hidden flag changes (a block
-- of its domain added or lifted), the other recomputes a thread at commit when a
-- hidden author's reply is written or deleted there anyway (an activity received
-- before the block and processed after it). Reads stay as they were.

-- Replies looked up by remote author: the threads to recompute, and an actor's posts
-- (Delete of an actor).
CREATE INDEX posts_remote_author ON posts (remote_author_id) WHERE remote_author_id IS NOT NULL;

-- Recompute the counters of these threads from their shown posts. A thread keeps its
-- creation date as last activity when no shown reply is left. Unchanged rows are not
-- written (a write bumps the thread's version and invalidates cached pages).
CREATE FUNCTION vbg_threads_recount(thread_ids bigint[]) RETURNS void LANGUAGE sql AS $$
    UPDATE threads t SET reply_count = s.replies, last_activity_at = s.last_activity
    FROM (
        SELECT t2.id,
               count(p.id) FILTER (WHERE NOT p.is_opening AND p.deleted_at IS NULL)::integer AS replies,
               greatest(t2.created_at, max(p.created_at) FILTER (WHERE NOT p.is_opening)) AS last_activity
        FROM threads t2
        LEFT JOIN (posts p LEFT JOIN actors a ON a.id = p.remote_author_id)
            ON p.thread_id = t2.id AND a.hidden IS NOT TRUE
        WHERE t2.id = ANY (thread_ids)
        GROUP BY t2.id
    ) s
    WHERE t.id = s.id AND (t.reply_count, t.last_activity_at) IS DISTINCT FROM (s.replies, s.last_activity)
$$;

-- An actor hidden or shown again: the threads where it replied.
CREATE FUNCTION vbg_actors_recount_threads() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM vbg_threads_recount(ARRAY(
        SELECT DISTINCT p.thread_id FROM posts p WHERE p.remote_author_id = NEW.id AND NOT p.is_opening));
    RETURN NULL;
END
$$;
CREATE TRIGGER actors_recount_threads AFTER UPDATE ON actors
    FOR EACH ROW WHEN (OLD.hidden IS DISTINCT FROM NEW.hidden)
    EXECUTE FUNCTION vbg_actors_recount_threads();

-- A remote reply written or deleted: if its author is hidden when the transaction
-- commits, the writer's +1/-1 on the thread is undone by a recount. Deferred, so it
-- runs after the writer's own UPDATE of threads. Local members are never hidden.
CREATE FUNCTION vbg_posts_recount_hidden() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM actors WHERE id = NEW.remote_author_id AND hidden) THEN
        PERFORM vbg_threads_recount(ARRAY[NEW.thread_id]);
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER posts_recount_hidden AFTER INSERT OR UPDATE OF deleted_at ON posts
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.remote_author_id IS NOT NULL AND NOT NEW.is_opening)
    EXECUTE FUNCTION vbg_posts_recount_hidden();

-- Threads that already count replies of hidden authors.
SELECT vbg_threads_recount(ARRAY(
    SELECT DISTINCT p.thread_id FROM posts p JOIN actors a ON a.id = p.remote_author_id
    WHERE a.hidden AND NOT p.is_opening));

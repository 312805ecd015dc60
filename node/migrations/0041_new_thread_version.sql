-- A thread's first post does not bump the version of a thread created by the same transaction (nobody saw it yet).

-- The version tells a cached thread page that it is stale. A thread inserted by the
-- running transaction cannot be in any cache, so its opening post, written in that
-- transaction (forum and federation inbox alike), leaves the version alone: one UPDATE
-- of threads less per new thread. Any other write (a reply, an edit, an opening post
-- added to a thread created earlier or by a savepoint) still bumps it.
CREATE OR REPLACE FUNCTION posts_bump_thread_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' AND NEW.is_opening AND EXISTS (
        SELECT FROM threads WHERE id = NEW.thread_id AND xmin = xid(pg_current_xact_id())
    ) THEN
        RETURN NULL;
    END IF;
    UPDATE threads SET version = version + 1
    WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.thread_id ELSE NEW.thread_id END;
    RETURN NULL;
END
$$;

-- A version per thread, bumped by every change to the thread or its posts, so a thread page can reuse its rendered posts.

ALTER TABLE threads ADD COLUMN version bigint NOT NULL DEFAULT 0;

-- Any change to the thread row itself (title, pin, lock, expert answer, counters).
CREATE FUNCTION threads_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END
$$;
CREATE TRIGGER threads_bump_version BEFORE UPDATE ON threads
    FOR EACH ROW WHEN (OLD.version = NEW.version) EXECUTE FUNCTION threads_bump_version();

-- Any change to one of its posts (new reply, edit, deletion, like count), whoever writes it.
CREATE FUNCTION posts_bump_thread_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE threads SET version = version + 1
    WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.thread_id ELSE NEW.thread_id END;
    RETURN NULL;
END
$$;
CREATE TRIGGER posts_bump_thread_version AFTER INSERT OR UPDATE OR DELETE ON posts
    FOR EACH ROW EXECUTE FUNCTION posts_bump_thread_version();

-- Each post carries its number in its thread (1: the opening post), so a thread page is a range of numbers read by index, however deep in a long thread (issue 17).

-- A thread page was its posts by OFFSET: page 40 of a thread of 2,000 replies read the
-- 1,950 posts before it (each joined to its author) to throw them away, and a permalink
-- counted the posts before its own. Discourse numbers the posts of a topic as they come
-- (post_number); so do we: page N shows numbers 50N-48 .. 50N+1 (page 1: 1 .. 51), and a
-- post's page is its number's. Posts of hidden authors (actors.hidden) keep their number
-- and are left out of their page, which then shows fewer posts.
--
-- The numbering follows the page's order (opening post first, then by date): a post
-- takes the thread's next number when written (threads.last_number, raised under the
-- thread's row lock, so two replies never share one). A backfilled reply is written with
-- its older date: the backfill renumbers its thread once done (vbg_threads_renumber).
-- An opening post is always 1 and leaves a new thread's row alone (migration 0041).

LOCK TABLE threads, posts IN SHARE ROW EXCLUSIVE MODE;  -- no post written meanwhile
SET LOCAL maintenance_work_mem = '256MB';

CREATE TEMP TABLE post_numbers ON COMMIT DROP AS
SELECT id, thread_id,
       row_number() OVER (PARTITION BY thread_id ORDER BY is_opening DESC, created_at, id)::integer AS number
FROM posts;
ALTER TABLE post_numbers ADD PRIMARY KEY (id);

-- As in 0151: the table is rewritten once through ALTER … TYPE … USING (indexes rebuilt in
-- bulk), the USING expression reading the numbers through a helper dropped afterwards.
CREATE FUNCTION pg_temp.post_number(post bigint) RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT number FROM post_numbers WHERE id = post
$$;
ALTER TABLE posts ADD COLUMN number integer;
ALTER TABLE posts ALTER COLUMN number SET DATA TYPE integer USING pg_temp.post_number(id);
ALTER TABLE posts ALTER COLUMN number SET NOT NULL;
DROP FUNCTION pg_temp.post_number(bigint);
CREATE INDEX posts_thread_number ON posts (thread_id, number);

ALTER TABLE threads ADD COLUMN last_number integer NOT NULL DEFAULT 1;
UPDATE threads t SET last_number = n.last
FROM (SELECT thread_id, max(number) AS last FROM post_numbers GROUP BY thread_id) n
WHERE t.id = n.thread_id AND n.last > 1;

-- A reply takes the thread's next number, bumping its version in the same UPDATE (what
-- posts_bump_thread_version did after the insert: one write of the thread row, as before).
-- No thread (a foreign key violation to come): 0, so that error is the one raised.
CREATE FUNCTION vbg_posts_number() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.is_opening THEN
        NEW.number := 1;
        RETURN NEW;
    END IF;
    UPDATE public.threads SET last_number = last_number + 1, version = version + 1
    WHERE id = NEW.thread_id
    RETURNING last_number INTO NEW.number;
    IF NOT FOUND THEN
        NEW.number := 0;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER posts_number BEFORE INSERT ON posts FOR EACH ROW EXECUTE FUNCTION vbg_posts_number();

-- posts_bump_thread_version (migration 0041) no longer runs for a reply's insert.
DROP TRIGGER posts_bump_thread_version ON posts;
CREATE TRIGGER posts_bump_thread_version AFTER UPDATE OR DELETE ON posts
    FOR EACH ROW EXECUTE FUNCTION posts_bump_thread_version();
CREATE TRIGGER posts_bump_thread_version_opening AFTER INSERT ON posts
    FOR EACH ROW WHEN (NEW.is_opening) EXECUTE FUNCTION posts_bump_thread_version();

-- The posts of these threads numbered again in the page's order (after a backfill wrote
-- replies with their older dates); rows whose number holds are not written.
CREATE FUNCTION vbg_threads_renumber(thread_ids bigint[]) RETURNS void LANGUAGE sql AS $$
    SELECT FROM public.threads WHERE id = ANY (thread_ids) ORDER BY id FOR UPDATE;
    UPDATE public.posts p SET number = s.number
    FROM (SELECT id, row_number() OVER (PARTITION BY thread_id ORDER BY is_opening DESC, created_at, id)::integer
                 AS number
          FROM public.posts WHERE thread_id = ANY (thread_ids)) s
    WHERE p.id = s.id AND p.number <> s.number;
    UPDATE public.threads t SET last_number = greatest(s.last, 1)
    FROM (SELECT t2.id, max(p.number) AS last FROM public.threads t2 LEFT JOIN public.posts p ON p.thread_id = t2.id
          WHERE t2.id = ANY (thread_ids) GROUP BY t2.id) s
    WHERE t.id = s.id AND t.last_number <> greatest(s.last, 1);
$$;

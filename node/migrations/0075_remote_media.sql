-- Remote media attachments of remote posts: listed on arrival, fetched, cleaned and stored by the media worker (federation/media.py).

-- One row per attachment of a remote post (at most 4, in the object's order). 'image'
-- rows are fetched by the media worker; 'link' rows (anything else) are only shown as
-- an outbound link and never fetched. The state machine lives in federation/media.py.
CREATE TABLE remote_media (
    id bigserial PRIMARY KEY,
    post_id bigint NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    position smallint NOT NULL CHECK (position BETWEEN 0 AND 3),
    remote_url text NOT NULL CHECK (length(remote_url) <= 2048),
    kind text NOT NULL CHECK (kind IN ('image', 'link')),
    -- the media type the remote server declared (never trusted: the bytes decide)
    media_type text NOT NULL DEFAULT '' CHECK (length(media_type) <= 100),
    -- the alt text (ActivityPub ``name``)
    name text NOT NULL DEFAULT '' CHECK (length(name) <= 1500),
    sensitive boolean NOT NULL DEFAULT false,
    status text NOT NULL CHECK (status IN ('pending', 'stored', 'refused', 'failed', 'link')),
    attempts integer NOT NULL DEFAULT 0,
    -- when pending: the next attempt (a claim pushes it one lease ahead)
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- the file under <data_dir>/media/: a random name, never derived from the remote URL
    stored_name text UNIQUE,
    stored_type text,
    width integer,
    height integer,
    size integer,
    error text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (post_id, position),
    CHECK ((kind = 'link') = (status = 'link')),
    CHECK ((status = 'stored') = (stored_name IS NOT NULL))
);
-- The worker's claim: due pending rows in the order they fell due.
CREATE INDEX remote_media_due ON remote_media (next_attempt_at, id) WHERE status = 'pending';

-- Stored files whose row is gone: the media worker deletes them from disk, then the row
-- here. Written by the trigger below in the transaction that removes the media row, so
-- a rolled-back deletion leaves the file in place.
CREATE TABLE remote_media_trash (
    stored_name text PRIMARY KEY,
    trashed_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION vbg_remote_media_trash() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO remote_media_trash (stored_name) VALUES (OLD.stored_name) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER remote_media_trash AFTER DELETE ON remote_media
    FOR EACH ROW WHEN (OLD.stored_name IS NOT NULL) EXECUTE FUNCTION vbg_remote_media_trash();

-- A deleted post (author's Delete, moderator removal, deleted actor) loses its media at
-- once, whoever soft-deletes it; so does every post of a deleted thread. The WHEN
-- clauses keep other updates of posts (likes, edits) free of any function call.
CREATE FUNCTION vbg_post_media_drop() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'threads' THEN
        DELETE FROM remote_media WHERE post_id IN (SELECT id FROM posts WHERE thread_id = NEW.id);
    ELSE
        DELETE FROM remote_media WHERE post_id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER posts_media_drop AFTER UPDATE OF deleted_at ON posts
    FOR EACH ROW WHEN (OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL)
    EXECUTE FUNCTION vbg_post_media_drop();
CREATE TRIGGER threads_media_drop AFTER UPDATE OF deleted_at ON threads
    FOR EACH ROW WHEN (OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL)
    EXECUTE FUNCTION vbg_post_media_drop();

-- Wake the media worker: one notification per inserting statement (as vbg_notify_outbox, 0060).
CREATE FUNCTION vbg_notify_media() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vbg_media', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER remote_media_notify AFTER INSERT ON remote_media
    FOR EACH STATEMENT EXECUTE FUNCTION vbg_notify_media();
CREATE TRIGGER remote_media_trash_notify AFTER INSERT ON remote_media_trash
    FOR EACH STATEMENT EXECUTE FUNCTION vbg_notify_media();

-- Backfill of remote communities and threads (issue 11): what a followed group already holds is fetched in
-- the background. One row per job: a group's outbox (its recent threads, pinned threads and moderators, on
-- first follow) or one thread (its context, replies or reply chain, when opened or when an unknown reply
-- arrives). States and delays: federation/backfill.py; the rows are node.backfill's.
CREATE TABLE backfill_jobs (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('outbox', 'thread')),
    community_id bigint REFERENCES communities (id) ON DELETE CASCADE,
    thread_id bigint REFERENCES threads (id) ON DELETE CASCADE,
    object_uri text CHECK (length(object_uri) <= 2000),  -- a thread job named by an object we do not store
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    stored integer NOT NULL DEFAULT 0,  -- posts this job stored (all its attempts)
    note text NOT NULL DEFAULT '',  -- why it stopped: a cap reached, the error given up on
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    CHECK ((kind = 'outbox' AND community_id IS NOT NULL AND thread_id IS NULL AND object_uri IS NULL)
        OR (kind = 'thread' AND (thread_id IS NOT NULL OR object_uri IS NOT NULL)))
);
-- At most one pending job per target: scheduling again while one waits is a no-op.
CREATE UNIQUE INDEX backfill_jobs_one_pending ON backfill_jobs (kind, community_id, thread_id, object_uri)
    NULLS NOT DISTINCT WHERE status = 'pending';
CREATE INDEX backfill_jobs_due ON backfill_jobs (next_attempt_at, id) WHERE status = 'pending';
-- When a thread was last backfilled (the thread page asks before scheduling again).
CREATE INDEX backfill_jobs_thread ON backfill_jobs (thread_id, created_at DESC) WHERE thread_id IS NOT NULL;
CREATE INDEX backfill_jobs_object ON backfill_jobs (object_uri, created_at DESC) WHERE object_uri IS NOT NULL;
CREATE INDEX backfill_jobs_community ON backfill_jobs (community_id) WHERE community_id IS NOT NULL;
CREATE INDEX backfill_jobs_finished ON backfill_jobs (finished_at) WHERE finished_at IS NOT NULL;

-- Wake the backfill worker: one notification per inserting statement (as vbg_notify_media, 0075).
CREATE FUNCTION vbg_notify_backfill() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vbg_backfill', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER backfill_jobs_notify AFTER INSERT ON backfill_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION vbg_notify_backfill();

-- The moderators a followed group lists (its `moderators` collection, as Lemmy publishes it), read at
-- backfill: shown on the remote community's page; a removal by one of them is the group's own.
CREATE TABLE remote_moderators (
    community_id bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    actor_id bigint NOT NULL REFERENCES actors (id) ON DELETE CASCADE,
    PRIMARY KEY (community_id, actor_id)
);
CREATE INDEX remote_moderators_actor ON remote_moderators (actor_id);

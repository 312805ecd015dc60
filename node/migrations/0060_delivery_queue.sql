-- Outgoing federation: activities stored once, one delivery job per (activity, inbox), a ledger of receivers.

-- Every activity we send, as sent (also lets /activities/{uuid} be served later).
CREATE TABLE activities (
    id bigserial PRIMARY KEY,
    uri text NOT NULL UNIQUE,
    -- the local actor whose key signs the deliveries
    actor_uri text NOT NULL,
    -- the content object the activity is about (Page/Note id), for the ledger
    object_uri text,
    -- 'public' or 'members': who may read it if served later
    audience text NOT NULL DEFAULT 'members' CHECK (audience IN ('public', 'members', 'direct')),
    json jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX activities_object ON activities (object_uri) WHERE object_uri IS NOT NULL;

-- One row per (activity, inbox); the state machine lives in federation/delivery.py.
CREATE TABLE delivery_jobs (
    id bigserial PRIMARY KEY,
    activity_id bigint NOT NULL REFERENCES activities (id) ON DELETE CASCADE,
    inbox text NOT NULL,
    domain text NOT NULL,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'in_flight', 'done', 'failed', 'dead')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz,
    last_status integer,
    last_error text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (activity_id, inbox)
);
CREATE INDEX delivery_jobs_due ON delivery_jobs (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX delivery_jobs_in_flight ON delivery_jobs (domain, lease_until) WHERE state = 'in_flight';
CREATE INDEX delivery_jobs_finished ON delivery_jobs (updated_at) WHERE state IN ('done', 'failed', 'dead');
CREATE INDEX delivery_jobs_domain ON delivery_jobs (domain, state);

-- Which inboxes (and so instances) received each object: a later Delete reaches all of them.
CREATE TABLE deliveries_ledger (
    object_uri text NOT NULL,
    inbox text NOT NULL,
    domain text NOT NULL,
    delivered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (object_uri, inbox)
);
CREATE INDEX deliveries_ledger_domain ON deliveries_ledger (domain);

-- Start of the current run of consecutive failures (instance health, see delivery.py).
ALTER TABLE instances ADD COLUMN failing_since timestamptz;

-- Wake the workers: one notification per inserting statement (NOTIFY de-duplicates
-- identical payloads within a transaction anyway).
CREATE FUNCTION vbg_notify_delivery() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vbg_delivery', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER delivery_jobs_notify AFTER INSERT ON delivery_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION vbg_notify_delivery();

CREATE FUNCTION vbg_notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vbg_outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_events_notify AFTER INSERT ON outbox_events
    FOR EACH STATEMENT EXECUTE FUNCTION vbg_notify_outbox();

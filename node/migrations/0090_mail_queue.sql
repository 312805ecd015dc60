-- Outgoing e-mail: a queue written by node services in the caller's transaction (node/mail.py) and sent by the mail worker, never inside a web request.

-- One row per message. The state machine lives in node/mail.py (its diagram) and
-- federation/mailer.py (the worker that talks SMTP).
CREATE TABLE mail_queue (
    id bigserial PRIMARY KEY,
    -- the member the message is for, when there is one: deleting her account drops
    -- what was not sent yet, and her address with it
    user_id bigint REFERENCES users (id) ON DELETE CASCADE,
    -- what the message is (password_reset, notification, digest …): for logs and counts,
    -- never its content
    kind text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,39}$'),
    recipient text NOT NULL CHECK (length(recipient) BETWEEN 3 AND 320),
    subject text NOT NULL CHECK (length(subject) BETWEEN 1 AND 300),
    body text NOT NULL CHECK (length(body) <= 100000),
    -- extra headers (List-Unsubscribe …), checked by node/mail.py
    headers jsonb NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed', 'dropped')),
    attempts integer NOT NULL DEFAULT 0,
    -- when pending: the next attempt (a claim pushes it one lease ahead)
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    error text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    CHECK ((status = 'pending') = (finished_at IS NULL))
);
-- The worker's claim: due pending rows in the order they fell due.
CREATE INDEX mail_queue_due ON mail_queue (next_attempt_at, id) WHERE status = 'pending';
-- The purge of finished rows (their subject and address are kept a few days only).
CREATE INDEX mail_queue_finished ON mail_queue (finished_at) WHERE status <> 'pending';

-- Wake the mail worker: one notification per inserting statement.
CREATE FUNCTION vbg_notify_mail() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vbg_mail', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER mail_queue_notify AFTER INSERT ON mail_queue
    FOR EACH STATEMENT EXECUTE FUNCTION vbg_notify_mail();

-- Notifications, followed threads and bookmarks: members learn what concerns them (node/notifications.py owns these tables).

-- A member following a thread. Written for its author and each replier the first time
-- (« automatic »); ``following = false`` keeps a member's « Ne plus suivre » through
-- later replies of hers.
CREATE TABLE thread_follows (
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    thread_id bigint NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    following boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, thread_id)
);
-- notify_reply's fan-out: the followers of one thread.
CREATE INDEX thread_follows_thread ON thread_follows (thread_id) INCLUDE (user_id) WHERE following;

-- A member's bookmarks (« Enregistrer ») of posts.
CREATE TABLE bookmarks (
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    post_id bigint NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, post_id)
);
CREATE INDEX bookmarks_user ON bookmarks (user_id, created_at DESC);

-- One row per thing a member should learn. Subjects are ids (never copied text); the
-- page and e-mails show names and links, read through the visibility rules at read time.
CREATE TABLE notifications (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN (
        'reply_followed', 'reply_to_me', 'expert_answer', 'mention', 'registration_approved',
        'registration_refused', 'moderation', 'report_handled', 'new_report', 'new_application')),
    -- who did it: a local member, or a remote actor (remote replies and mentions)
    actor_user_id bigint REFERENCES users (id) ON DELETE SET NULL,
    actor_remote_id bigint REFERENCES actors (id) ON DELETE SET NULL,
    thread_id bigint REFERENCES threads (id) ON DELETE CASCADE,
    post_id bigint REFERENCES posts (id) ON DELETE CASCADE,
    report_id bigint REFERENCES reports (id) ON DELETE CASCADE,
    -- new_application: the applicant
    subject_user_id bigint REFERENCES users (id) ON DELETE CASCADE,
    -- moderation, registration_refused, report_handled: what the member is told (a moderator's words)
    reason text NOT NULL DEFAULT '' CHECK (length(reason) <= 2000),
    created_at timestamptz NOT NULL DEFAULT now(),
    read_at timestamptz,
    -- when an e-mail (immediate or digest) told of it
    emailed_at timestamptz
);
-- Each kind produced once per member and subject.
CREATE UNIQUE INDEX notifications_once_post ON notifications (user_id, kind, post_id) WHERE post_id IS NOT NULL;
CREATE UNIQUE INDEX notifications_once_report ON notifications (user_id, kind, report_id)
    WHERE report_id IS NOT NULL AND post_id IS NULL;
CREATE UNIQUE INDEX notifications_once_subject ON notifications (user_id, kind, subject_user_id)
    WHERE subject_user_id IS NOT NULL;
CREATE INDEX notifications_user ON notifications (user_id, id DESC);
CREATE INDEX notifications_unread ON notifications (user_id) WHERE read_at IS NULL;
CREATE INDEX notifications_to_email ON notifications (created_at) WHERE emailed_at IS NULL AND read_at IS NULL;

-- Per member: which kinds reach her in the app and by e-mail, and how often e-mails go.
-- No row: every kind on, e-mails as a daily digest.
CREATE TABLE notification_settings (
    user_id bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    email_mode text NOT NULL DEFAULT 'daily' CHECK (email_mode IN ('off', 'immediate', 'daily', 'weekly')),
    -- kinds the member turned off
    muted_kinds text[] NOT NULL DEFAULT '{}',
    last_digest_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The unread count is read with the session (node.sessions): tell every web process's
-- session cache that these members' counts changed, once per member and statement.
CREATE FUNCTION vbg_notifications_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vbg_sessions', u::text) FROM (SELECT DISTINCT user_id AS u FROM changed) d;
    RETURN NULL;
END
$$;
CREATE TRIGGER notifications_inserted AFTER INSERT ON notifications
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION vbg_notifications_changed();
CREATE TRIGGER notifications_updated AFTER UPDATE ON notifications
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION vbg_notifications_changed();
CREATE TRIGGER notifications_deleted AFTER DELETE ON notifications
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION vbg_notifications_changed();

-- Private conversations (node/messages.py): participants, messages sealed with per-conversation keys, blocks, preferences, reports.

-- Subject and bodies are stored sealed (node/encryption.py): AES-256-GCM under the
-- conversation's own key, which is stored wrapped by a node key kept outside the
-- database (key_id names which one). No column here holds readable content.
CREATE TABLE conversations (
    id bigserial PRIMARY KEY,
    -- ActivityPub `context` of the conversation: ours (/messages/c/{uuid}) or the remote one's
    ap_context text NOT NULL UNIQUE,
    key_id text NOT NULL,
    wrapped_key bytea NOT NULL,
    subject_sealed bytea NOT NULL,
    created_by bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_message_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversations_key ON conversations (key_id);

-- Who is in a conversation: a local member (user_id) or a remote actor (actor_id).
CREATE TABLE conversation_participants (
    id bigserial PRIMARY KEY,
    conversation_id bigint NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id bigint REFERENCES users (id) ON DELETE CASCADE,
    actor_id bigint REFERENCES actors (id) ON DELETE CASCADE,
    joined_at timestamptz NOT NULL DEFAULT now(),
    left_at timestamptz,
    last_read_at timestamptz,
    -- messages from others since last_read_at (local members only): the header's count
    unread integer NOT NULL DEFAULT 0 CHECK (unread >= 0),
    CHECK ((user_id IS NULL) <> (actor_id IS NULL))
);
CREATE UNIQUE INDEX conversation_participants_user ON conversation_participants (conversation_id, user_id)
    WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX conversation_participants_actor ON conversation_participants (conversation_id, actor_id)
    WHERE actor_id IS NOT NULL;
CREATE INDEX conversation_participants_member ON conversation_participants (user_id, conversation_id)
    WHERE user_id IS NOT NULL;

CREATE TABLE messages (
    id bigserial PRIMARY KEY,
    conversation_id bigint NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    -- public id: ours are /messages/m/{uuid}; a remote message keeps its ActivityPub id
    uuid uuid NOT NULL UNIQUE,
    ap_id text UNIQUE,
    author_user_id bigint REFERENCES users (id) ON DELETE SET NULL,
    author_actor_id bigint REFERENCES actors (id) ON DELETE SET NULL,
    source_sealed bytea NOT NULL,
    html_sealed bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_conversation ON messages (conversation_id, created_at, id);

-- A member's blocks: the blocked person's later messages never reach them (nor are they told).
CREATE TABLE message_blocks (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_user_id bigint REFERENCES users (id) ON DELETE CASCADE,
    blocked_actor_id bigint REFERENCES actors (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((blocked_user_id IS NULL) <> (blocked_actor_id IS NULL))
);
CREATE UNIQUE INDEX message_blocks_user ON message_blocks (user_id, blocked_user_id)
    WHERE blocked_user_id IS NOT NULL;
CREATE UNIQUE INDEX message_blocks_actor ON message_blocks (user_id, blocked_actor_id)
    WHERE blocked_actor_id IS NOT NULL;

-- Who may write to a member: anyone allowed (all), members of this node (local), experts and moderators (experts).
CREATE TABLE message_preferences (
    user_id bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    accept_from text NOT NULL DEFAULT 'all' CHECK (accept_from IN ('all', 'local', 'experts')),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A participant's report of one message: with it, they consent to the moderators reading that message.
CREATE TABLE message_reports (
    id bigserial PRIMARY KEY,
    message_id bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    reporter_id bigint REFERENCES users (id) ON DELETE SET NULL,
    reason_sealed bytea NOT NULL,
    state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'resolved', 'dismissed')),
    created_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    resolved_by bigint REFERENCES users (id) ON DELETE SET NULL
);
CREATE UNIQUE INDEX message_reports_open ON message_reports (message_id, reporter_id) WHERE state = 'open';
CREATE INDEX message_reports_list ON message_reports (state, created_at DESC);

-- Private messages from other servers: from approved partner instances only (partners),
-- also from any other allowed server such as Mastodon (fediverse), or from none (none).
INSERT INTO node_settings (key, value) VALUES ('messages_remote', '"partners"') ON CONFLICT DO NOTHING;

-- The unread count is read with the session (node.sessions): a change evicts the
-- member's cached sessions in every web process, as an account change does.
CREATE FUNCTION conversation_participants_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vbg_sessions', NEW.user_id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER conversation_participants_joined AFTER INSERT ON conversation_participants
    FOR EACH ROW WHEN (NEW.user_id IS NOT NULL AND NEW.unread > 0)
    EXECUTE FUNCTION conversation_participants_notify();
CREATE TRIGGER conversation_participants_unread AFTER UPDATE OF unread, left_at ON conversation_participants
    FOR EACH ROW WHEN (NEW.user_id IS NOT NULL
        AND (OLD.unread IS DISTINCT FROM NEW.unread OR OLD.left_at IS DISTINCT FROM NEW.left_at))
    EXECUTE FUNCTION conversation_participants_notify();

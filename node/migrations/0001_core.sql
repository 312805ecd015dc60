-- Core forum schema: members, sessions, communities, threads, posts, search, audit log, outbox events.

-- Accent folding for French full-text search without the unaccent extension
-- (the embedded server does not ship it). Immutable, so usable in indexes.
CREATE FUNCTION vbg_fold(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT replace(replace(translate(lower(t),
        'àâäáãåāçćčéèêëēėęíìîïīįñńóòôöõøōúùûüūýÿžźż''’',
        'aaaaaaaccceeeeeeeiiiiiinnooooooouuuuuyyzzz  '),
        'œ', 'oe'), 'æ', 'ae')
$$;

CREATE FUNCTION vbg_tsvector(title text, body text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(to_tsvector('french', vbg_fold(coalesce(title, ''))), 'A')
        || setweight(to_tsvector('french', vbg_fold(coalesce(body, ''))), 'B')
$$;

CREATE TABLE users (
    id bigserial PRIMARY KEY,
    username text NOT NULL,
    display_name text NOT NULL,
    email text NOT NULL,
    password_hash text NOT NULL,
    role text NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'expert', 'moderator', 'admin')),
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'refused', 'suspended')),
    refusal_reason text,
    profession text NOT NULL DEFAULT 'autre'
        CHECK (profession IN ('medical', 'paramedical', 'psychosocial', 'juridique', 'projet', 'autre')),
    profession_detail text NOT NULL DEFAULT '',
    organisation text NOT NULL DEFAULT '',
    country text NOT NULL DEFAULT '',
    motivation text NOT NULL DEFAULT '',
    bio text NOT NULL DEFAULT '',
    charter_accepted_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    reviewed_at timestamptz,
    reviewed_by bigint REFERENCES users (id),
    password_changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_pending ON users (created_at) WHERE status = 'pending';

-- Server-side sessions: the cookie holds a random token, the table its SHA-256.
CREATE TABLE sessions (
    id bigserial PRIMARY KEY,
    token_hash bytea NOT NULL UNIQUE,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    user_agent text NOT NULL DEFAULT '',
    ip text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Fixed-window counters shared by every web process (login, registration …).
CREATE TABLE rate_limits (
    key text NOT NULL,
    window_start timestamptz NOT NULL,
    hits integer NOT NULL DEFAULT 0,
    PRIMARY KEY (key, window_start)
);

CREATE TABLE communities (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    title text NOT NULL,
    description text NOT NULL DEFAULT '',
    rules text NOT NULL DEFAULT '',
    visibility text NOT NULL DEFAULT 'members' CHECK (visibility IN ('members', 'public', 'local')),
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by bigint REFERENCES users (id)
);
CREATE UNIQUE INDEX communities_name_key ON communities (lower(name));

-- Experts animate given communities.
CREATE TABLE community_experts (
    community_id bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (community_id, user_id)
);

-- A member following a community (drives the home page).
CREATE TABLE community_follows (
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    community_id bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, community_id)
);

CREATE TABLE threads (
    id bigserial PRIMARY KEY,
    community_id bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    author_id bigint REFERENCES users (id),
    title text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    reply_count integer NOT NULL DEFAULT 0,
    pinned boolean NOT NULL DEFAULT false,
    locked boolean NOT NULL DEFAULT false,
    expert_answer_id bigint,
    deleted_at timestamptz
);
CREATE INDEX threads_community_activity ON threads (community_id, pinned DESC, last_activity_at DESC, id DESC);
CREATE INDEX threads_activity ON threads (last_activity_at DESC, id DESC);

-- Every post of a thread: the opening post (parent_id NULL, is_opening) and replies.
CREATE TABLE posts (
    id bigserial PRIMARY KEY,
    thread_id bigint NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    author_id bigint REFERENCES users (id),
    parent_id bigint REFERENCES posts (id),
    is_opening boolean NOT NULL DEFAULT false,
    source text NOT NULL,
    content_html text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz,
    deleted_at timestamptz,
    search_vector tsvector
);
CREATE INDEX posts_thread ON posts (thread_id, created_at, id);
CREATE INDEX posts_search ON posts USING gin (search_vector);
CREATE UNIQUE INDEX posts_one_opening ON posts (thread_id) WHERE is_opening;
ALTER TABLE threads ADD FOREIGN KEY (expert_answer_id) REFERENCES posts (id) ON DELETE SET NULL;

-- Edit history, visible to moderators.
CREATE TABLE post_edits (
    id bigserial PRIMARY KEY,
    post_id bigint NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    editor_id bigint REFERENCES users (id),
    previous_title text,
    previous_source text NOT NULL,
    edited_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX post_edits_post ON post_edits (post_id, edited_at);

-- Unread markers: what each member has seen of each thread.
CREATE TABLE thread_reads (
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    thread_id bigint NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    read_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, thread_id)
);

-- Append-only record of every moderator and admin action.
CREATE TABLE audit_log (
    id bigserial PRIMARY KEY,
    actor_id bigint REFERENCES users (id),
    actor_label text NOT NULL DEFAULT '',
    action text NOT NULL,
    target_type text NOT NULL DEFAULT '',
    target_id text NOT NULL DEFAULT '',
    reason text NOT NULL DEFAULT '',
    details jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- Outbox events: written by node services in the same transaction as the change they
-- describe; federation workers turn them into deliveries (design §2).
CREATE TABLE outbox_events (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz
);
CREATE INDEX outbox_events_pending ON outbox_events (id) WHERE processed_at IS NULL;

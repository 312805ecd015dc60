-- Federation identities: actors (local and remote) with their keys, known instances, ActivityPub ids on content.

CREATE TABLE instances (
    domain text PRIMARY KEY,
    software text NOT NULL DEFAULT '',
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_success_at timestamptz,
    last_failure_at timestamptz,
    failure_count integer NOT NULL DEFAULT 0,
    unreachable_since timestamptz,
    -- approved partner instance: may follow members-only communities and fetch their content
    approved boolean NOT NULL DEFAULT false,
    approved_at timestamptz,
    approved_by bigint REFERENCES users (id)
);

-- Every ActivityPub actor we know: our own (local: a member, a community, the instance
-- Application) and remote ones (cached from their documents).
CREATE TABLE actors (
    id bigserial PRIMARY KEY,
    uri text NOT NULL UNIQUE,
    kind text NOT NULL,
    local boolean NOT NULL,
    user_id bigint UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    community_id bigint UNIQUE REFERENCES communities (id) ON DELETE CASCADE,
    username text NOT NULL,
    domain text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    summary_html text NOT NULL DEFAULT '',
    url text,
    inbox text,
    shared_inbox text,
    outbox text,
    followers text,
    featured text,
    moderators text,
    public_key_id text UNIQUE,
    public_key_pem text,
    private_key_enc bytea,
    manually_approves_followers boolean NOT NULL DEFAULT false,
    document jsonb,
    fetched_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (local OR (user_id IS NULL AND community_id IS NULL AND private_key_enc IS NULL))
);
CREATE INDEX actors_domain ON actors (domain);
CREATE UNIQUE INDEX actors_acct ON actors (lower(username), domain, kind);

-- Content: local posts get their ActivityPub id from their URL; remote ones keep theirs.
ALTER TABLE threads ADD COLUMN ap_id text UNIQUE;
ALTER TABLE threads ADD COLUMN remote_author_id bigint REFERENCES actors (id);
ALTER TABLE posts ADD COLUMN ap_id text UNIQUE;
ALTER TABLE posts ADD COLUMN remote_author_id bigint REFERENCES actors (id);
ALTER TABLE posts ADD COLUMN likes_count integer NOT NULL DEFAULT 0;

-- Remote actors following one of our communities (FEP-1b12 group followers).
CREATE TABLE community_followers (
    community_id bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    actor_id bigint NOT NULL REFERENCES actors (id) ON DELETE CASCADE,
    follow_activity_id text NOT NULL,
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'accepted', 'rejected')),
    created_at timestamptz NOT NULL DEFAULT now(),
    decided_at timestamptz,
    PRIMARY KEY (community_id, actor_id)
);
CREATE INDEX community_followers_accepted ON community_followers (community_id) WHERE state = 'accepted';

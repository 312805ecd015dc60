-- The schema node/migrations build, as pg_dump prints it (normalised).
-- Generated: do not edit. After adding a migration run `./dev schema`.

CREATE FUNCTION public.audit_log_append_only() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;

CREATE FUNCTION public.conversation_participants_notify() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('vbg_sessions', NEW.user_id::text);
    RETURN NULL;
END
$$;

CREATE FUNCTION public.document_versions_trash() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    INSERT INTO document_trash (stored_name)
    SELECT n FROM unnest(ARRAY[OLD.stored_name, OLD.thumbnail_name]) n WHERE n IS NOT NULL
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE FUNCTION public.documents_bump_version() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    UPDATE public.node_settings SET value = to_jsonb(gen_random_uuid()::text), updated_at = now()
    WHERE key = 'documents_version';
    RETURN NULL;
END $$;

CREATE FUNCTION public.documents_follow_thread() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    gone_thread bigint;
BEGIN
    IF TG_TABLE_NAME = 'threads' THEN
        gone_thread := NEW.id;
    ELSE
        gone_thread := NEW.thread_id;
    END IF;
    WITH gone AS (
        UPDATE documents SET deleted_at = now()
        WHERE thread_id = gone_thread AND deleted_at IS NULL
        RETURNING id
    ), files AS (
        INSERT INTO document_trash (stored_name)
        SELECT n FROM document_versions v JOIN gone ON gone.id = v.document_id,
             unnest(ARRAY[v.stored_name, v.thumbnail_name]) n
        WHERE n IS NOT NULL
        ON CONFLICT DO NOTHING
    )
    UPDATE document_versions v
    SET stored_name = NULL, thumbnail_name = NULL,
        status = CASE WHEN v.status IN ('stored', 'pending') THEN 'failed' ELSE v.status END
    FROM gone WHERE v.document_id = gone.id;
    PERFORM pg_notify('vbg_documents', '');
    RETURN NULL;
END $$;

CREATE FUNCTION public.posts_bump_thread_version() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'INSERT' AND NEW.is_opening AND EXISTS (
        SELECT FROM threads WHERE id = NEW.thread_id AND xmin = xid(pg_current_xact_id())
    ) THEN
        RETURN NULL;
    END IF;
    UPDATE threads SET version = version + 1
    WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.thread_id ELSE NEW.thread_id END;
    RETURN NULL;
END
$$;

CREATE FUNCTION public.posts_community() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.community_id := (SELECT community_id FROM public.threads WHERE id = NEW.thread_id);
    RETURN NEW;
END
$$;

CREATE FUNCTION public.posts_search_vector() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.search_vector := vbg_tsvector(
        CASE WHEN NEW.is_opening THEN (SELECT title FROM threads WHERE id = NEW.thread_id) END,
        NEW.source);
    RETURN NEW;
END
$$;

CREATE FUNCTION public.sessions_notify_end() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('vbg_sessions', OLD.user_id::text);
    RETURN NULL;
END
$$;

CREATE FUNCTION public.threads_bump_version() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END
$$;

CREATE FUNCTION public.threads_community_posts() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    UPDATE public.posts SET community_id = NEW.community_id WHERE thread_id = NEW.id;
    RETURN NULL;
END
$$;

CREATE FUNCTION public.threads_title_search_vector() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    UPDATE posts SET search_vector = vbg_tsvector(NEW.title, source)
    WHERE thread_id = NEW.id AND is_opening;
    RETURN NULL;
END
$$;

CREATE FUNCTION public.users_notify_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('vbg_sessions', NEW.id::text);
    RETURN NULL;
END
$$;

CREATE FUNCTION public.vbg_actor_hidden(actor_id bigint) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT actor_id IS NOT NULL AND coalesce(
        (SELECT vbg_domain_blocked(a.domain, ARRAY['suspend']) FROM actors a WHERE a.id = actor_id), false)
$$;

CREATE FUNCTION public.vbg_actor_silenced(actor_id bigint) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT actor_id IS NOT NULL AND coalesce(
        (SELECT vbg_domain_blocked(a.domain, ARRAY['suspend', 'silence']) FROM actors a WHERE a.id = actor_id),
        false)
$$;

CREATE FUNCTION public.vbg_actors_policy_flags() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.local THEN
        NEW.hidden := false;
        NEW.silenced := false;
    ELSE
        SELECT f.hidden, f.silenced INTO NEW.hidden, NEW.silenced
        FROM vbg_policy_flags(vbg_policy_keys(NEW.domain)) f;
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION public.vbg_actors_recount_threads() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM vbg_threads_recount(ARRAY(
        SELECT DISTINCT p.thread_id FROM posts p WHERE p.remote_author_id = NEW.id AND NOT p.is_opening));
    RETURN NULL;
END
$$;

CREATE FUNCTION public.vbg_bump_policy_version() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    UPDATE node_settings SET value = to_jsonb(gen_random_uuid()::text), updated_at = now()
    WHERE key = 'policy_version';
    RETURN NULL;
END
$$;

CREATE FUNCTION public.vbg_domain_blocked(d text, severities text[]) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT d IS NOT NULL AND EXISTS (
        SELECT 1 FROM domain_blocks b
        WHERE b.host = ANY (vbg_domain_suffixes(vbg_domain_host(d)))
          AND (b.port IS NULL OR b.port = vbg_domain_port(d))
          AND b.severity = ANY (severities))
$$;

CREATE FUNCTION public.vbg_domain_blocks_flag_actors() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    rules text[] := ARRAY[]::text[];
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE actors SET hidden = false, silenced = false WHERE hidden OR silenced;
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        rules := rules || OLD.domain;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        rules := rules || NEW.domain;
    END IF;
    UPDATE actors a SET (hidden, silenced) = (SELECT f.hidden, f.silenced FROM vbg_policy_flags(a.policy_keys) f)
    WHERE NOT a.local AND a.policy_keys && rules;
    RETURN NULL;
END
$$;

CREATE FUNCTION public.vbg_domain_covers(rule text, d text) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
    SELECT public.vbg_domain_host(rule) = ANY (public.vbg_domain_suffixes(public.vbg_domain_host(d)))
       AND (public.vbg_domain_port(rule) IS NULL
            OR public.vbg_domain_port(rule) IS NOT DISTINCT FROM public.vbg_domain_port(d))
$$;

CREATE FUNCTION public.vbg_domain_host(d text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
    SELECT rtrim(CASE WHEN d LIKE '[%' THEN split_part(lower(d), ']', 1) || ']'
                      ELSE split_part(lower(d), ':', 1) END, '.')
$$;

CREATE FUNCTION public.vbg_domain_port(d text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $_$
    SELECT CASE WHEN d LIKE '[%' THEN substring(d FROM '^\[[^]]*\]:([0-9]+)$')
                ELSE substring(d FROM ':([0-9]+)$') END
$_$;

CREATE FUNCTION public.vbg_domain_suffixes(host text) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $_$
    SELECT CASE WHEN host LIKE '[%' OR host ~ '^[0-9.]+$' THEN ARRAY[host]
           ELSE ARRAY(SELECT array_to_string(labels[i:], '.')
                      FROM (SELECT string_to_array(host, '.') AS labels) s,
                           generate_subscripts(s.labels, 1) AS i
                      ORDER BY i) END
$_$;

CREATE FUNCTION public.vbg_fold(t text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE WHEN lower(t) ~ '[äáãåāćčēėęíìīįñńóòöõøōúūýžźż]' THEN
        replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(
            replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(lower(t),
                'à', 'a'), 'â', 'a'),
                'ç', 'c'),
                'é', 'e'), 'è', 'e'), 'ê', 'e'), 'ë', 'e'),
                'î', 'i'), 'ï', 'i'),
                'ô', 'o'),
                'ù', 'u'), 'û', 'u'), 'ü', 'u'),
                'ÿ', 'y'),
                '''', ' '), '’', ' '),
                'œ', 'oe'),
                'æ', 'ae'),
            'ä', 'a'), 'á', 'a'), 'ã', 'a'), 'å', 'a'), 'ā', 'a'),
            'ć', 'c'), 'č', 'c'),
            'ē', 'e'), 'ė', 'e'), 'ę', 'e'),
            'í', 'i'), 'ì', 'i'), 'ī', 'i'), 'į', 'i'),
            'ñ', 'n'), 'ń', 'n'),
            'ó', 'o'), 'ò', 'o'), 'ö', 'o'), 'õ', 'o'), 'ø', 'o'), 'ō', 'o'),
            'ú', 'u'), 'ū', 'u'),
            'ý', 'y'),
            'ž', 'z'), 'ź', 'z'), 'ż', 'z')
    ELSE
        replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(lower(t),
            'à', 'a'), 'â', 'a'),
            'ç', 'c'),
            'é', 'e'), 'è', 'e'), 'ê', 'e'), 'ë', 'e'),
            'î', 'i'), 'ï', 'i'),
            'ô', 'o'),
            'ù', 'u'), 'û', 'u'), 'ü', 'u'),
            'ÿ', 'y'),
            '''', ' '), '’', ' '),
            'œ', 'oe'),
            'æ', 'ae')
    END
$$;

CREATE FUNCTION public.vbg_notifications_changed() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('vbg_sessions', u::text) FROM (SELECT DISTINCT user_id AS u FROM changed) d;
    RETURN NULL;
END
$$;

CREATE FUNCTION public.vbg_notify_backfill() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('vbg_backfill', '');
    RETURN NULL;
END
$$;

CREATE FUNCTION public.vbg_notify_delivery() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('vbg_delivery', '');
    RETURN NULL;
END
$$;

CREATE FUNCTION public.vbg_notify_mail() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('vbg_mail', '');
    RETURN NULL;
END
$$;

CREATE FUNCTION public.vbg_notify_media() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('vbg_media', '');
    RETURN NULL;
END
$$;

CREATE FUNCTION public.vbg_notify_outbox() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    PERFORM pg_notify('vbg_outbox', '');
    RETURN NULL;
END
$$;

CREATE FUNCTION public.vbg_policy_flags(keys text[], OUT hidden boolean, OUT silenced boolean) RETURNS record
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT coalesce(bool_or(b.severity = 'suspend'), false),
           coalesce(bool_or(b.severity IN ('suspend', 'silence')), false)
    FROM domain_blocks b WHERE b.domain = ANY (keys)
$$;

CREATE FUNCTION public.vbg_policy_keys(d text) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
    SELECT q.s || ARRAY(SELECT x || ':' || q.p FROM unnest(q.s) AS x WHERE q.p IS NOT NULL)
    FROM (SELECT public.vbg_domain_suffixes(public.vbg_domain_host(d)) AS s,
                 public.vbg_domain_port(d) AS p) q
$$;

CREATE FUNCTION public.vbg_post_media_drop() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_TABLE_NAME = 'threads' THEN
        DELETE FROM remote_media WHERE post_id IN (SELECT id FROM posts WHERE thread_id = NEW.id);
    ELSE
        DELETE FROM remote_media WHERE post_id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION public.vbg_posts_insert() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    thread_title text;
    thread_new boolean;
BEGIN
    IF NEW.is_opening THEN
        SELECT community_id, title, xmin = xid(pg_current_xact_id())
        INTO NEW.community_id, thread_title, thread_new
        FROM public.threads WHERE id = NEW.thread_id;
        NEW.number := 1;
        -- An opening post written into an older thread changes its page (migration 0041);
        -- a thread written by this transaction is new anyway.
        IF thread_new IS NOT TRUE THEN
            UPDATE public.threads SET version = version + 1 WHERE id = NEW.thread_id;
        END IF;
    ELSE
        -- The thread's next number and version, under its row lock (migration 0185).
        -- No thread (a foreign key violation to come): number 0, no community.
        UPDATE public.threads SET last_number = last_number + 1, version = version + 1
        WHERE id = NEW.thread_id
        RETURNING community_id, last_number INTO NEW.community_id, NEW.number;
        IF NOT FOUND THEN
            NEW.number := 0;
        END IF;
    END IF;
    NEW.search_vector := public.vbg_tsvector(thread_title, NEW.source);
    RETURN NEW;
END
$$;

CREATE FUNCTION public.vbg_posts_recount_hidden() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF EXISTS (SELECT FROM actors WHERE id = NEW.remote_author_id AND hidden) THEN
        PERFORM vbg_threads_recount(ARRAY[NEW.thread_id]);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION public.vbg_remote_media_trash() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    INSERT INTO remote_media_trash (stored_name) VALUES (OLD.stored_name) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE FUNCTION public.vbg_threads_recount(thread_ids bigint[]) RETURNS void
    LANGUAGE sql
    AS $$
    UPDATE threads t SET reply_count = s.replies, last_activity_at = s.last_activity
    FROM (
        SELECT t2.id,
               count(p.id) FILTER (WHERE NOT p.is_opening AND p.deleted_at IS NULL)::integer AS replies,
               greatest(t2.created_at, max(p.created_at) FILTER (WHERE NOT p.is_opening)) AS last_activity
        FROM threads t2
        LEFT JOIN (posts p LEFT JOIN actors a ON a.id = p.remote_author_id)
            ON p.thread_id = t2.id AND a.hidden IS NOT TRUE
        WHERE t2.id = ANY (thread_ids)
        GROUP BY t2.id
    ) s
    WHERE t.id = s.id AND (t.reply_count, t.last_activity_at) IS DISTINCT FROM (s.replies, s.last_activity)
$$;

CREATE FUNCTION public.vbg_threads_renumber(thread_ids bigint[]) RETURNS void
    LANGUAGE sql
    AS $$
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

CREATE FUNCTION public.vbg_tsvector(title text, body text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT setweight(to_tsvector('french', public.vbg_fold(coalesce(title, ''))), 'A')
        || setweight(to_tsvector('french', public.vbg_fold(coalesce(body, ''))), 'B')
$$;

CREATE TABLE public.activities (
    id bigint NOT NULL,
    uri text NOT NULL,
    actor_uri text NOT NULL,
    object_uri text,
    audience text DEFAULT 'members'::text NOT NULL,
    json jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT activities_audience_check CHECK ((audience = ANY (ARRAY['public'::text, 'members'::text, 'direct'::text])))
);

CREATE SEQUENCE public.activities_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.activities_id_seq OWNED BY public.activities.id;

CREATE TABLE public.actors (
    id bigint NOT NULL,
    uri text NOT NULL,
    kind text NOT NULL,
    local boolean NOT NULL,
    user_id bigint,
    community_id bigint,
    username text NOT NULL,
    domain text NOT NULL,
    display_name text DEFAULT ''::text NOT NULL,
    summary_html text DEFAULT ''::text NOT NULL,
    url text,
    inbox text,
    shared_inbox text,
    outbox text,
    followers text,
    featured text,
    moderators text,
    public_key_id text,
    public_key_pem text,
    private_key_enc bytea,
    manually_approves_followers boolean DEFAULT false NOT NULL,
    document jsonb,
    fetched_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    deleted_at timestamp with time zone,
    policy_keys text[] GENERATED ALWAYS AS (public.vbg_policy_keys(domain)) STORED,
    hidden boolean DEFAULT false NOT NULL,
    silenced boolean DEFAULT false NOT NULL,
    CONSTRAINT actors_check CHECK ((local OR ((user_id IS NULL) AND (community_id IS NULL) AND (private_key_enc IS NULL))))
);

CREATE SEQUENCE public.actors_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.actors_id_seq OWNED BY public.actors.id;

CREATE TABLE public.audit_log (
    id bigint NOT NULL,
    actor_id bigint,
    actor_label text DEFAULT ''::text NOT NULL,
    action text NOT NULL,
    target_type text DEFAULT ''::text NOT NULL,
    target_id text DEFAULT ''::text NOT NULL,
    reason text DEFAULT ''::text NOT NULL,
    details jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE SEQUENCE public.audit_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.audit_log_id_seq OWNED BY public.audit_log.id;

CREATE TABLE public.backfill_jobs (
    id bigint NOT NULL,
    kind text NOT NULL,
    community_id bigint,
    thread_id bigint,
    object_uri text,
    status text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    stored integer DEFAULT 0 NOT NULL,
    note text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    CONSTRAINT backfill_jobs_check CHECK ((((kind = 'outbox'::text) AND (community_id IS NOT NULL) AND (thread_id IS NULL) AND (object_uri IS NULL)) OR ((kind = 'thread'::text) AND ((thread_id IS NOT NULL) OR (object_uri IS NOT NULL))))),
    CONSTRAINT backfill_jobs_kind_check CHECK ((kind = ANY (ARRAY['outbox'::text, 'thread'::text]))),
    CONSTRAINT backfill_jobs_object_uri_check CHECK ((length(object_uri) <= 2000)),
    CONSTRAINT backfill_jobs_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'done'::text, 'failed'::text])))
);

CREATE SEQUENCE public.backfill_jobs_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.backfill_jobs_id_seq OWNED BY public.backfill_jobs.id;

CREATE TABLE public.bookmarks (
    user_id bigint NOT NULL,
    post_id bigint NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE public.communities (
    id bigint NOT NULL,
    name text NOT NULL,
    title text NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    rules text DEFAULT ''::text NOT NULL,
    visibility text DEFAULT 'members'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    created_by bigint,
    actor_id bigint,
    CONSTRAINT communities_remote_visibility CHECK (((actor_id IS NULL) OR (visibility <> 'local'::text))),
    CONSTRAINT communities_visibility_check CHECK ((visibility = ANY (ARRAY['members'::text, 'public'::text, 'local'::text])))
);

CREATE SEQUENCE public.communities_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.communities_id_seq OWNED BY public.communities.id;

CREATE TABLE public.community_experts (
    community_id bigint NOT NULL,
    user_id bigint NOT NULL
);

CREATE TABLE public.community_followers (
    community_id bigint NOT NULL,
    actor_id bigint NOT NULL,
    follow_activity_id text NOT NULL,
    state text DEFAULT 'pending'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    decided_at timestamp with time zone,
    CONSTRAINT community_followers_state_check CHECK ((state = ANY (ARRAY['pending'::text, 'accepted'::text, 'rejected'::text])))
);

CREATE TABLE public.community_follows (
    user_id bigint NOT NULL,
    community_id bigint NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE public.conversation_participants (
    id bigint NOT NULL,
    conversation_id bigint NOT NULL,
    user_id bigint,
    actor_id bigint,
    joined_at timestamp with time zone DEFAULT now() NOT NULL,
    left_at timestamp with time zone,
    last_read_at timestamp with time zone,
    unread integer DEFAULT 0 NOT NULL,
    last_message_at timestamp with time zone,
    CONSTRAINT conversation_participants_check CHECK (((user_id IS NULL) <> (actor_id IS NULL))),
    CONSTRAINT conversation_participants_unread_check CHECK ((unread >= 0))
);

CREATE SEQUENCE public.conversation_participants_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.conversation_participants_id_seq OWNED BY public.conversation_participants.id;

CREATE TABLE public.conversations (
    id bigint NOT NULL,
    ap_context text NOT NULL,
    key_id text NOT NULL,
    wrapped_key bytea NOT NULL,
    subject_sealed bytea NOT NULL,
    created_by bigint,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_message_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE SEQUENCE public.conversations_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.conversations_id_seq OWNED BY public.conversations.id;

CREATE TABLE public.deliveries_ledger (
    object_uri text NOT NULL,
    inbox text NOT NULL,
    domain text NOT NULL,
    delivered_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE public.delivery_jobs (
    id bigint NOT NULL,
    activity_id bigint NOT NULL,
    inbox text NOT NULL,
    domain text NOT NULL,
    state text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    lease_until timestamp with time zone,
    last_status integer,
    last_error text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT delivery_jobs_state_check CHECK ((state = ANY (ARRAY['pending'::text, 'in_flight'::text, 'done'::text, 'failed'::text, 'dead'::text])))
);

CREATE SEQUENCE public.delivery_jobs_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.delivery_jobs_id_seq OWNED BY public.delivery_jobs.id;

CREATE TABLE public.document_trash (
    stored_name text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE public.document_versions (
    id bigint NOT NULL,
    document_id bigint NOT NULL,
    number integer NOT NULL,
    status text DEFAULT 'stored'::text NOT NULL,
    stored_name text,
    thumbnail_name text,
    media_type text NOT NULL,
    size bigint DEFAULT 0 NOT NULL,
    file_name text DEFAULT ''::text NOT NULL,
    extracted_text text DEFAULT ''::text NOT NULL,
    carried text[] DEFAULT '{}'::text[] NOT NULL,
    note text DEFAULT ''::text NOT NULL,
    uploaded_by bigint,
    remote_url text,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    error text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT document_versions_file_name_check CHECK ((length(file_name) <= 200)),
    CONSTRAINT document_versions_media_type_check CHECK ((length(media_type) <= 100)),
    CONSTRAINT document_versions_note_check CHECK ((length(note) <= 500)),
    CONSTRAINT document_versions_number_check CHECK ((number >= 1)),
    CONSTRAINT document_versions_remote_url_check CHECK ((length(remote_url) <= 2048)),
    CONSTRAINT document_versions_size_check CHECK ((size >= 0)),
    CONSTRAINT document_versions_status_check CHECK ((status = ANY (ARRAY['stored'::text, 'pending'::text, 'link'::text, 'refused'::text, 'failed'::text])))
);

CREATE SEQUENCE public.document_versions_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.document_versions_id_seq OWNED BY public.document_versions.id;

CREATE TABLE public.documents (
    id bigint NOT NULL,
    thread_id bigint,
    community_id bigint NOT NULL,
    author_id bigint,
    remote boolean DEFAULT false NOT NULL,
    title text NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    doc_type text DEFAULT 'autre'::text NOT NULL,
    tags text[] DEFAULT '{}'::text[] NOT NULL,
    language text DEFAULT 'fr'::text NOT NULL,
    origin text DEFAULT ''::text NOT NULL,
    licence text DEFAULT ''::text NOT NULL,
    issued_on date,
    status text DEFAULT 'published'::text NOT NULL,
    featured_at timestamp with time zone,
    featured_by bigint,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    deleted_at timestamp with time zone,
    search_vector tsvector,
    CONSTRAINT documents_description_check CHECK ((length(description) <= 20000)),
    CONSTRAINT documents_doc_type_check CHECK ((doc_type = ANY (ARRAY['protocole'::text, 'fiche'::text, 'formation'::text, 'rapport'::text, 'modele'::text, 'autre'::text]))),
    CONSTRAINT documents_language_check CHECK ((language ~ '^[a-z]{2,3}$'::text)),
    CONSTRAINT documents_licence_check CHECK ((length(licence) <= 100)),
    CONSTRAINT documents_origin_check CHECK ((length(origin) <= 200)),
    CONSTRAINT documents_status_check CHECK ((status = ANY (ARRAY['draft'::text, 'published'::text]))),
    CONSTRAINT documents_tags_check CHECK ((cardinality(tags) <= 10)),
    CONSTRAINT documents_title_check CHECK (((length(title) >= 1) AND (length(title) <= 200)))
);

CREATE SEQUENCE public.documents_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.documents_id_seq OWNED BY public.documents.id;

CREATE TABLE public.domain_allows (
    id bigint NOT NULL,
    domain text NOT NULL,
    note text DEFAULT ''::text NOT NULL,
    created_by bigint,
    created_by_label text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    host text GENERATED ALWAYS AS (public.vbg_domain_host(domain)) STORED,
    port text GENERATED ALWAYS AS (public.vbg_domain_port(domain)) STORED
);

CREATE SEQUENCE public.domain_allows_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.domain_allows_id_seq OWNED BY public.domain_allows.id;

CREATE TABLE public.domain_blocks (
    id bigint NOT NULL,
    domain text NOT NULL,
    severity text NOT NULL,
    reject_media boolean DEFAULT false NOT NULL,
    reject_reports boolean DEFAULT false NOT NULL,
    public_comment text DEFAULT ''::text NOT NULL,
    private_comment text DEFAULT ''::text NOT NULL,
    obfuscate boolean DEFAULT false NOT NULL,
    created_by bigint,
    created_by_label text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    host text GENERATED ALWAYS AS (public.vbg_domain_host(domain)) STORED,
    port text GENERATED ALWAYS AS (public.vbg_domain_port(domain)) STORED,
    CONSTRAINT domain_blocks_severity_check CHECK ((severity = ANY (ARRAY['suspend'::text, 'silence'::text, 'reject_media'::text, 'noop'::text])))
);

CREATE SEQUENCE public.domain_blocks_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.domain_blocks_id_seq OWNED BY public.domain_blocks.id;

CREATE TABLE public.email_changes (
    id bigint NOT NULL,
    user_id bigint NOT NULL,
    new_email text NOT NULL,
    token_hash bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    used_at timestamp with time zone
);

CREATE SEQUENCE public.email_changes_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.email_changes_id_seq OWNED BY public.email_changes.id;

CREATE TABLE public.follow_answers (
    activity_id text NOT NULL,
    answer text NOT NULL,
    follow_id text,
    follower_uri text,
    followed_uri text NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT follow_answers_answer_check CHECK ((answer = ANY (ARRAY['accept'::text, 'reject'::text])))
);

CREATE TABLE public.group_follows (
    community_id bigint NOT NULL,
    follower_id bigint NOT NULL,
    follow_activity_id text NOT NULL,
    state text DEFAULT 'pending'::text NOT NULL,
    requested_by bigint,
    requested_at timestamp with time zone DEFAULT now() NOT NULL,
    decided_at timestamp with time zone,
    node_wide boolean DEFAULT false NOT NULL,
    CONSTRAINT group_follows_state_check CHECK ((state = ANY (ARRAY['pending'::text, 'accepted'::text, 'rejected'::text, 'undone'::text])))
);

CREATE TABLE public.inbox_items (
    id bigint NOT NULL,
    activity_id text NOT NULL,
    activity_type text NOT NULL,
    actor_uri text NOT NULL,
    recipient text DEFAULT ''::text NOT NULL,
    document jsonb NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    locked_until timestamp with time zone,
    outcome text DEFAULT ''::text NOT NULL,
    error text DEFAULT ''::text NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL,
    processed_at timestamp with time zone,
    sync_header text,
    CONSTRAINT inbox_items_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'processing'::text, 'done'::text, 'ignored'::text, 'failed'::text])))
);

CREATE SEQUENCE public.inbox_items_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.inbox_items_id_seq OWNED BY public.inbox_items.id;

CREATE TABLE public.instances (
    domain text NOT NULL,
    software text DEFAULT ''::text NOT NULL,
    first_seen_at timestamp with time zone DEFAULT now() NOT NULL,
    last_success_at timestamp with time zone,
    last_failure_at timestamp with time zone,
    failure_count integer DEFAULT 0 NOT NULL,
    unreachable_since timestamp with time zone,
    approved boolean DEFAULT false NOT NULL,
    approved_at timestamp with time zone,
    approved_by bigint,
    failing_since timestamp with time zone
);

CREATE TABLE public.mail_queue (
    id bigint NOT NULL,
    user_id bigint,
    kind text NOT NULL,
    recipient text NOT NULL,
    subject text NOT NULL,
    body text NOT NULL,
    headers jsonb DEFAULT '{}'::jsonb NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    error text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    CONSTRAINT mail_queue_body_check CHECK ((length(body) <= 100000)),
    CONSTRAINT mail_queue_check CHECK (((status = 'pending'::text) = (finished_at IS NULL))),
    CONSTRAINT mail_queue_kind_check CHECK ((kind ~ '^[a-z][a-z0-9_]{0,39}$'::text)),
    CONSTRAINT mail_queue_recipient_check CHECK (((length(recipient) >= 3) AND (length(recipient) <= 320))),
    CONSTRAINT mail_queue_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'sent'::text, 'failed'::text, 'dropped'::text]))),
    CONSTRAINT mail_queue_subject_check CHECK (((length(subject) >= 1) AND (length(subject) <= 300)))
);

CREATE SEQUENCE public.mail_queue_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.mail_queue_id_seq OWNED BY public.mail_queue.id;

CREATE TABLE public.message_attachments (
    id bigint NOT NULL,
    message_id bigint NOT NULL,
    uuid uuid NOT NULL,
    stored_name text NOT NULL,
    kind text NOT NULL,
    size bigint NOT NULL,
    name_sealed bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE SEQUENCE public.message_attachments_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.message_attachments_id_seq OWNED BY public.message_attachments.id;

CREATE TABLE public.message_blocks (
    id bigint NOT NULL,
    user_id bigint NOT NULL,
    blocked_user_id bigint,
    blocked_actor_id bigint,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT message_blocks_check CHECK (((blocked_user_id IS NULL) <> (blocked_actor_id IS NULL)))
);

CREATE SEQUENCE public.message_blocks_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.message_blocks_id_seq OWNED BY public.message_blocks.id;

CREATE TABLE public.message_preferences (
    user_id bigint NOT NULL,
    accept_from text DEFAULT 'all'::text NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT message_preferences_accept_from_check CHECK ((accept_from = ANY (ARRAY['all'::text, 'local'::text, 'experts'::text])))
);

CREATE TABLE public.message_reports (
    id bigint NOT NULL,
    message_id bigint NOT NULL,
    reporter_id bigint,
    reason_sealed bytea NOT NULL,
    state text DEFAULT 'open'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    resolved_at timestamp with time zone,
    resolved_by bigint,
    CONSTRAINT message_reports_state_check CHECK ((state = ANY (ARRAY['open'::text, 'resolved'::text, 'dismissed'::text])))
);

CREATE SEQUENCE public.message_reports_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.message_reports_id_seq OWNED BY public.message_reports.id;

CREATE TABLE public.messages (
    id bigint NOT NULL,
    conversation_id bigint NOT NULL,
    uuid uuid NOT NULL,
    ap_id text,
    author_user_id bigint,
    author_actor_id bigint,
    source_sealed bytea NOT NULL,
    html_sealed bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE SEQUENCE public.messages_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.messages_id_seq OWNED BY public.messages.id;

CREATE TABLE public.node_settings (
    key text NOT NULL,
    value jsonb NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE public.notification_settings (
    user_id bigint NOT NULL,
    email_mode text DEFAULT 'daily'::text NOT NULL,
    muted_kinds text[] DEFAULT '{}'::text[] NOT NULL,
    last_digest_at timestamp with time zone,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT notification_settings_email_mode_check CHECK ((email_mode = ANY (ARRAY['off'::text, 'immediate'::text, 'daily'::text, 'weekly'::text])))
);

CREATE TABLE public.notifications (
    id bigint NOT NULL,
    user_id bigint NOT NULL,
    kind text NOT NULL,
    actor_user_id bigint,
    actor_remote_id bigint,
    thread_id bigint,
    post_id bigint,
    report_id bigint,
    subject_user_id bigint,
    reason text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    read_at timestamp with time zone,
    emailed_at timestamp with time zone,
    conversation_id bigint,
    CONSTRAINT notifications_kind_check CHECK ((kind = ANY (ARRAY['reply_followed'::text, 'reply_to_me'::text, 'expert_answer'::text, 'mention'::text, 'registration_approved'::text, 'registration_refused'::text, 'moderation'::text, 'report_handled'::text, 'new_report'::text, 'new_application'::text, 'new_message'::text]))),
    CONSTRAINT notifications_reason_check CHECK ((length(reason) <= 2000))
);

CREATE SEQUENCE public.notifications_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.notifications_id_seq OWNED BY public.notifications.id;

CREATE TABLE public.outbox_events (
    id bigint NOT NULL,
    kind text NOT NULL,
    payload jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    processed_at timestamp with time zone
);

CREATE SEQUENCE public.outbox_events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.outbox_events_id_seq OWNED BY public.outbox_events.id;

CREATE TABLE public.password_resets (
    id bigint NOT NULL,
    user_id bigint NOT NULL,
    token_hash bytea NOT NULL,
    via text NOT NULL,
    issued_by bigint,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    used_at timestamp with time zone,
    CONSTRAINT password_resets_via_check CHECK ((via = ANY (ARRAY['admin'::text, 'cli'::text, 'email'::text])))
);

CREATE SEQUENCE public.password_resets_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.password_resets_id_seq OWNED BY public.password_resets.id;

CREATE TABLE public.post_edits (
    id bigint NOT NULL,
    post_id bigint NOT NULL,
    editor_id bigint,
    previous_title text,
    previous_source text NOT NULL,
    edited_at timestamp with time zone DEFAULT now() NOT NULL,
    editor_actor_id bigint
);

CREATE SEQUENCE public.post_edits_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.post_edits_id_seq OWNED BY public.post_edits.id;

CREATE TABLE public.post_likes (
    post_id bigint NOT NULL,
    actor_id bigint,
    activity_id text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    user_id bigint,
    CONSTRAINT post_likes_one_liker CHECK (((actor_id IS NULL) <> (user_id IS NULL)))
);

CREATE TABLE public.post_shares (
    post_id bigint NOT NULL,
    actor_id bigint NOT NULL,
    activity_id text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE public.posts (
    id bigint NOT NULL,
    thread_id bigint NOT NULL,
    author_id bigint,
    parent_id bigint,
    is_opening boolean DEFAULT false NOT NULL,
    source text NOT NULL,
    content_html text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone,
    deleted_at timestamp with time zone,
    search_vector tsvector,
    ap_id text,
    remote_author_id bigint,
    likes_count integer DEFAULT 0 NOT NULL,
    shares_count integer DEFAULT 0 NOT NULL,
    removal_rule smallint,
    removal_reason text DEFAULT ''::text NOT NULL,
    removed_by_origin boolean DEFAULT false NOT NULL,
    community_id bigint NOT NULL,
    number integer NOT NULL,
    CONSTRAINT posts_removal_reason_check CHECK ((length(removal_reason) <= 500)),
    CONSTRAINT posts_removal_rule_check CHECK (((removal_rule >= 0) AND (removal_rule <= 20)))
);

CREATE SEQUENCE public.posts_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.posts_id_seq OWNED BY public.posts.id;

CREATE TABLE public.rate_limits (
    key text NOT NULL,
    window_start timestamp with time zone NOT NULL,
    hits integer DEFAULT 0 NOT NULL
);

CREATE TABLE public.remote_media (
    id bigint NOT NULL,
    post_id bigint NOT NULL,
    "position" smallint NOT NULL,
    remote_url text NOT NULL,
    kind text NOT NULL,
    media_type text DEFAULT ''::text NOT NULL,
    name text DEFAULT ''::text NOT NULL,
    sensitive boolean DEFAULT false NOT NULL,
    status text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    stored_name text,
    stored_type text,
    width integer,
    height integer,
    size integer,
    error text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT remote_media_check CHECK (((kind = 'link'::text) = (status = 'link'::text))),
    CONSTRAINT remote_media_check1 CHECK (((status = 'stored'::text) = (stored_name IS NOT NULL))),
    CONSTRAINT remote_media_kind_check CHECK ((kind = ANY (ARRAY['image'::text, 'link'::text]))),
    CONSTRAINT remote_media_media_type_check CHECK ((length(media_type) <= 100)),
    CONSTRAINT remote_media_name_check CHECK ((length(name) <= 1500)),
    CONSTRAINT remote_media_position_check CHECK ((("position" >= 0) AND ("position" <= 3))),
    CONSTRAINT remote_media_remote_url_check CHECK ((length(remote_url) <= 2048)),
    CONSTRAINT remote_media_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'stored'::text, 'refused'::text, 'failed'::text, 'link'::text])))
);

CREATE SEQUENCE public.remote_media_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.remote_media_id_seq OWNED BY public.remote_media.id;

CREATE TABLE public.remote_media_trash (
    stored_name text NOT NULL,
    trashed_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE public.remote_moderators (
    community_id bigint NOT NULL,
    actor_id bigint NOT NULL
);

CREATE TABLE public.remote_tombstones (
    object_id text NOT NULL,
    actor_uri text NOT NULL,
    reason text NOT NULL,
    activity_id text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT remote_tombstones_reason_check CHECK ((reason = ANY (ARRAY['deleted'::text, 'undone'::text])))
);

CREATE TABLE public.reports (
    id bigint NOT NULL,
    reporter_actor_id bigint,
    reporter_user_id bigint,
    activity_id text,
    target_ids text[] DEFAULT '{}'::text[] NOT NULL,
    post_ids bigint[] DEFAULT '{}'::bigint[] NOT NULL,
    community_id bigint,
    content text DEFAULT ''::text NOT NULL,
    state text DEFAULT 'open'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    resolved_at timestamp with time zone,
    resolved_by bigint,
    resolution_note text DEFAULT ''::text NOT NULL,
    CONSTRAINT reports_state_check CHECK ((state = ANY (ARRAY['open'::text, 'resolved'::text, 'dismissed'::text])))
);

CREATE SEQUENCE public.reports_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.reports_id_seq OWNED BY public.reports.id;

CREATE TABLE public.schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE public.sessions (
    id bigint NOT NULL,
    token_hash bytea NOT NULL,
    user_id bigint NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_seen_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    user_agent text DEFAULT ''::text NOT NULL,
    ip text DEFAULT ''::text NOT NULL
);

CREATE SEQUENCE public.sessions_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.sessions_id_seq OWNED BY public.sessions.id;

CREATE TABLE public.site_pages (
    slug text NOT NULL,
    source text NOT NULL,
    html text NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_by bigint,
    CONSTRAINT site_pages_slug_check CHECK ((slug = 'legal'::text))
);

CREATE TABLE public.thread_follows (
    user_id bigint NOT NULL,
    thread_id bigint NOT NULL,
    following boolean DEFAULT true NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE public.thread_reads (
    user_id bigint NOT NULL,
    thread_id bigint NOT NULL,
    read_at timestamp with time zone NOT NULL
);

CREATE TABLE public.threads (
    id bigint NOT NULL,
    community_id bigint NOT NULL,
    author_id bigint,
    title text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_activity_at timestamp with time zone DEFAULT now() NOT NULL,
    reply_count integer DEFAULT 0 NOT NULL,
    pinned boolean DEFAULT false NOT NULL,
    locked boolean DEFAULT false NOT NULL,
    expert_answer_id bigint,
    deleted_at timestamp with time zone,
    ap_id text,
    remote_author_id bigint,
    version bigint DEFAULT 0 NOT NULL,
    last_number integer DEFAULT 1 NOT NULL
);

CREATE SEQUENCE public.threads_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.threads_id_seq OWNED BY public.threads.id;

CREATE TABLE public.totp_recovery_codes (
    id bigint NOT NULL,
    user_id bigint NOT NULL,
    code_hash bytea NOT NULL,
    used_at timestamp with time zone
);

CREATE SEQUENCE public.totp_recovery_codes_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.totp_recovery_codes_id_seq OWNED BY public.totp_recovery_codes.id;

CREATE TABLE public.users (
    id bigint NOT NULL,
    username text NOT NULL,
    display_name text NOT NULL,
    email text NOT NULL,
    password_hash text NOT NULL,
    role text DEFAULT 'member'::text NOT NULL,
    status text DEFAULT 'pending'::text NOT NULL,
    refusal_reason text,
    profession text DEFAULT 'autre'::text NOT NULL,
    profession_detail text DEFAULT ''::text NOT NULL,
    organisation text DEFAULT ''::text NOT NULL,
    country text DEFAULT ''::text NOT NULL,
    motivation text DEFAULT ''::text NOT NULL,
    bio text DEFAULT ''::text NOT NULL,
    charter_accepted_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    reviewed_at timestamp with time zone,
    reviewed_by bigint,
    password_changed_at timestamp with time zone DEFAULT now() NOT NULL,
    email_conflict boolean DEFAULT false NOT NULL,
    timezone text DEFAULT ''::text NOT NULL,
    deleted_at timestamp with time zone,
    totp_secret_sealed bytea,
    totp_pending_sealed bytea,
    totp_enabled_at timestamp with time zone,
    totp_last_step bigint DEFAULT 0 NOT NULL,
    suspension_reason text DEFAULT ''::text NOT NULL,
    in_directory boolean DEFAULT false NOT NULL,
    CONSTRAINT users_profession_check CHECK ((profession = ANY (ARRAY['medical'::text, 'paramedical'::text, 'psychosocial'::text, 'juridique'::text, 'projet'::text, 'autre'::text]))),
    CONSTRAINT users_role_check CHECK ((role = ANY (ARRAY['member'::text, 'expert'::text, 'moderator'::text, 'admin'::text]))),
    CONSTRAINT users_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'approved'::text, 'refused'::text, 'suspended'::text, 'deleted'::text]))),
    CONSTRAINT users_suspension_reason_check CHECK ((length(suspension_reason) <= 1000))
);

CREATE SEQUENCE public.users_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.users_id_seq OWNED BY public.users.id;

ALTER TABLE ONLY public.activities ALTER COLUMN id SET DEFAULT nextval('public.activities_id_seq'::regclass);

ALTER TABLE ONLY public.actors ALTER COLUMN id SET DEFAULT nextval('public.actors_id_seq'::regclass);

ALTER TABLE ONLY public.audit_log ALTER COLUMN id SET DEFAULT nextval('public.audit_log_id_seq'::regclass);

ALTER TABLE ONLY public.backfill_jobs ALTER COLUMN id SET DEFAULT nextval('public.backfill_jobs_id_seq'::regclass);

ALTER TABLE ONLY public.communities ALTER COLUMN id SET DEFAULT nextval('public.communities_id_seq'::regclass);

ALTER TABLE ONLY public.conversation_participants ALTER COLUMN id SET DEFAULT nextval('public.conversation_participants_id_seq'::regclass);

ALTER TABLE ONLY public.conversations ALTER COLUMN id SET DEFAULT nextval('public.conversations_id_seq'::regclass);

ALTER TABLE ONLY public.delivery_jobs ALTER COLUMN id SET DEFAULT nextval('public.delivery_jobs_id_seq'::regclass);

ALTER TABLE ONLY public.document_versions ALTER COLUMN id SET DEFAULT nextval('public.document_versions_id_seq'::regclass);

ALTER TABLE ONLY public.documents ALTER COLUMN id SET DEFAULT nextval('public.documents_id_seq'::regclass);

ALTER TABLE ONLY public.domain_allows ALTER COLUMN id SET DEFAULT nextval('public.domain_allows_id_seq'::regclass);

ALTER TABLE ONLY public.domain_blocks ALTER COLUMN id SET DEFAULT nextval('public.domain_blocks_id_seq'::regclass);

ALTER TABLE ONLY public.email_changes ALTER COLUMN id SET DEFAULT nextval('public.email_changes_id_seq'::regclass);

ALTER TABLE ONLY public.inbox_items ALTER COLUMN id SET DEFAULT nextval('public.inbox_items_id_seq'::regclass);

ALTER TABLE ONLY public.mail_queue ALTER COLUMN id SET DEFAULT nextval('public.mail_queue_id_seq'::regclass);

ALTER TABLE ONLY public.message_attachments ALTER COLUMN id SET DEFAULT nextval('public.message_attachments_id_seq'::regclass);

ALTER TABLE ONLY public.message_blocks ALTER COLUMN id SET DEFAULT nextval('public.message_blocks_id_seq'::regclass);

ALTER TABLE ONLY public.message_reports ALTER COLUMN id SET DEFAULT nextval('public.message_reports_id_seq'::regclass);

ALTER TABLE ONLY public.messages ALTER COLUMN id SET DEFAULT nextval('public.messages_id_seq'::regclass);

ALTER TABLE ONLY public.notifications ALTER COLUMN id SET DEFAULT nextval('public.notifications_id_seq'::regclass);

ALTER TABLE ONLY public.outbox_events ALTER COLUMN id SET DEFAULT nextval('public.outbox_events_id_seq'::regclass);

ALTER TABLE ONLY public.password_resets ALTER COLUMN id SET DEFAULT nextval('public.password_resets_id_seq'::regclass);

ALTER TABLE ONLY public.post_edits ALTER COLUMN id SET DEFAULT nextval('public.post_edits_id_seq'::regclass);

ALTER TABLE ONLY public.posts ALTER COLUMN id SET DEFAULT nextval('public.posts_id_seq'::regclass);

ALTER TABLE ONLY public.remote_media ALTER COLUMN id SET DEFAULT nextval('public.remote_media_id_seq'::regclass);

ALTER TABLE ONLY public.reports ALTER COLUMN id SET DEFAULT nextval('public.reports_id_seq'::regclass);

ALTER TABLE ONLY public.sessions ALTER COLUMN id SET DEFAULT nextval('public.sessions_id_seq'::regclass);

ALTER TABLE ONLY public.threads ALTER COLUMN id SET DEFAULT nextval('public.threads_id_seq'::regclass);

ALTER TABLE ONLY public.totp_recovery_codes ALTER COLUMN id SET DEFAULT nextval('public.totp_recovery_codes_id_seq'::regclass);

ALTER TABLE ONLY public.users ALTER COLUMN id SET DEFAULT nextval('public.users_id_seq'::regclass);

ALTER TABLE ONLY public.activities
    ADD CONSTRAINT activities_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.activities
    ADD CONSTRAINT activities_uri_key UNIQUE (uri);

ALTER TABLE ONLY public.actors
    ADD CONSTRAINT actors_community_id_key UNIQUE (community_id);

ALTER TABLE ONLY public.actors
    ADD CONSTRAINT actors_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.actors
    ADD CONSTRAINT actors_public_key_id_key UNIQUE (public_key_id);

ALTER TABLE ONLY public.actors
    ADD CONSTRAINT actors_uri_key UNIQUE (uri);

ALTER TABLE ONLY public.actors
    ADD CONSTRAINT actors_user_id_key UNIQUE (user_id);

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.backfill_jobs
    ADD CONSTRAINT backfill_jobs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.bookmarks
    ADD CONSTRAINT bookmarks_pkey PRIMARY KEY (user_id, post_id);

ALTER TABLE ONLY public.communities
    ADD CONSTRAINT communities_actor_id_key UNIQUE (actor_id);

ALTER TABLE ONLY public.communities
    ADD CONSTRAINT communities_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.community_experts
    ADD CONSTRAINT community_experts_pkey PRIMARY KEY (community_id, user_id);

ALTER TABLE ONLY public.community_followers
    ADD CONSTRAINT community_followers_pkey PRIMARY KEY (community_id, actor_id);

ALTER TABLE ONLY public.community_follows
    ADD CONSTRAINT community_follows_pkey PRIMARY KEY (user_id, community_id);

ALTER TABLE ONLY public.conversation_participants
    ADD CONSTRAINT conversation_participants_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.conversations
    ADD CONSTRAINT conversations_ap_context_key UNIQUE (ap_context);

ALTER TABLE ONLY public.conversations
    ADD CONSTRAINT conversations_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.deliveries_ledger
    ADD CONSTRAINT deliveries_ledger_pkey PRIMARY KEY (object_uri, inbox);

ALTER TABLE ONLY public.delivery_jobs
    ADD CONSTRAINT delivery_jobs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.document_trash
    ADD CONSTRAINT document_trash_pkey PRIMARY KEY (stored_name);

ALTER TABLE ONLY public.document_versions
    ADD CONSTRAINT document_versions_document_id_number_key UNIQUE (document_id, number);

ALTER TABLE ONLY public.document_versions
    ADD CONSTRAINT document_versions_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.document_versions
    ADD CONSTRAINT document_versions_stored_name_key UNIQUE (stored_name);

ALTER TABLE ONLY public.document_versions
    ADD CONSTRAINT document_versions_thumbnail_name_key UNIQUE (thumbnail_name);

ALTER TABLE ONLY public.documents
    ADD CONSTRAINT documents_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.documents
    ADD CONSTRAINT documents_thread_id_key UNIQUE (thread_id);

ALTER TABLE ONLY public.domain_allows
    ADD CONSTRAINT domain_allows_domain_key UNIQUE (domain);

ALTER TABLE ONLY public.domain_allows
    ADD CONSTRAINT domain_allows_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.domain_blocks
    ADD CONSTRAINT domain_blocks_domain_key UNIQUE (domain);

ALTER TABLE ONLY public.domain_blocks
    ADD CONSTRAINT domain_blocks_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.email_changes
    ADD CONSTRAINT email_changes_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.email_changes
    ADD CONSTRAINT email_changes_token_hash_key UNIQUE (token_hash);

ALTER TABLE ONLY public.follow_answers
    ADD CONSTRAINT follow_answers_pkey PRIMARY KEY (activity_id);

ALTER TABLE ONLY public.group_follows
    ADD CONSTRAINT group_follows_follow_activity_id_key UNIQUE (follow_activity_id);

ALTER TABLE ONLY public.group_follows
    ADD CONSTRAINT group_follows_pkey PRIMARY KEY (community_id);

ALTER TABLE ONLY public.inbox_items
    ADD CONSTRAINT inbox_items_activity_id_key UNIQUE (activity_id);

ALTER TABLE ONLY public.inbox_items
    ADD CONSTRAINT inbox_items_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.instances
    ADD CONSTRAINT instances_pkey PRIMARY KEY (domain);

ALTER TABLE ONLY public.mail_queue
    ADD CONSTRAINT mail_queue_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.message_attachments
    ADD CONSTRAINT message_attachments_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.message_attachments
    ADD CONSTRAINT message_attachments_uuid_key UNIQUE (uuid);

ALTER TABLE ONLY public.message_blocks
    ADD CONSTRAINT message_blocks_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.message_preferences
    ADD CONSTRAINT message_preferences_pkey PRIMARY KEY (user_id);

ALTER TABLE ONLY public.message_reports
    ADD CONSTRAINT message_reports_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_ap_id_key UNIQUE (ap_id);

ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_uuid_key UNIQUE (uuid);

ALTER TABLE ONLY public.node_settings
    ADD CONSTRAINT node_settings_pkey PRIMARY KEY (key);

ALTER TABLE ONLY public.notification_settings
    ADD CONSTRAINT notification_settings_pkey PRIMARY KEY (user_id);

ALTER TABLE ONLY public.notifications
    ADD CONSTRAINT notifications_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.outbox_events
    ADD CONSTRAINT outbox_events_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.password_resets
    ADD CONSTRAINT password_resets_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.password_resets
    ADD CONSTRAINT password_resets_token_hash_key UNIQUE (token_hash);

ALTER TABLE ONLY public.post_edits
    ADD CONSTRAINT post_edits_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.post_shares
    ADD CONSTRAINT post_shares_activity_id_key UNIQUE (activity_id);

ALTER TABLE ONLY public.post_shares
    ADD CONSTRAINT post_shares_pkey PRIMARY KEY (post_id, actor_id);

ALTER TABLE ONLY public.posts
    ADD CONSTRAINT posts_ap_id_key UNIQUE (ap_id);

ALTER TABLE ONLY public.posts
    ADD CONSTRAINT posts_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.rate_limits
    ADD CONSTRAINT rate_limits_pkey PRIMARY KEY (key, window_start);

ALTER TABLE ONLY public.remote_media
    ADD CONSTRAINT remote_media_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.remote_media
    ADD CONSTRAINT remote_media_post_id_position_key UNIQUE (post_id, "position");

ALTER TABLE ONLY public.remote_media
    ADD CONSTRAINT remote_media_stored_name_key UNIQUE (stored_name);

ALTER TABLE ONLY public.remote_media_trash
    ADD CONSTRAINT remote_media_trash_pkey PRIMARY KEY (stored_name);

ALTER TABLE ONLY public.remote_moderators
    ADD CONSTRAINT remote_moderators_pkey PRIMARY KEY (community_id, actor_id);

ALTER TABLE ONLY public.remote_tombstones
    ADD CONSTRAINT remote_tombstones_pkey PRIMARY KEY (object_id);

ALTER TABLE ONLY public.reports
    ADD CONSTRAINT reports_activity_id_key UNIQUE (activity_id);

ALTER TABLE ONLY public.reports
    ADD CONSTRAINT reports_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);

ALTER TABLE ONLY public.sessions
    ADD CONSTRAINT sessions_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.sessions
    ADD CONSTRAINT sessions_token_hash_key UNIQUE (token_hash);

ALTER TABLE ONLY public.site_pages
    ADD CONSTRAINT site_pages_pkey PRIMARY KEY (slug);

ALTER TABLE ONLY public.thread_follows
    ADD CONSTRAINT thread_follows_pkey PRIMARY KEY (user_id, thread_id);

ALTER TABLE ONLY public.thread_reads
    ADD CONSTRAINT thread_reads_pkey PRIMARY KEY (user_id, thread_id);

ALTER TABLE ONLY public.threads
    ADD CONSTRAINT threads_ap_id_key UNIQUE (ap_id);

ALTER TABLE ONLY public.threads
    ADD CONSTRAINT threads_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.totp_recovery_codes
    ADD CONSTRAINT totp_recovery_codes_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);

CREATE INDEX activities_object ON public.activities USING btree (object_uri) WHERE (object_uri IS NOT NULL);

CREATE UNIQUE INDEX actors_acct ON public.actors USING btree (lower(username), domain, kind);

CREATE INDEX actors_domain ON public.actors USING btree (domain);

CREATE INDEX actors_policy_keys ON public.actors USING gin (policy_keys) WHERE (NOT local);

CREATE INDEX backfill_jobs_community ON public.backfill_jobs USING btree (community_id) WHERE (community_id IS NOT NULL);

CREATE INDEX backfill_jobs_due ON public.backfill_jobs USING btree (next_attempt_at, id) WHERE (status = 'pending'::text);

CREATE INDEX backfill_jobs_finished ON public.backfill_jobs USING btree (finished_at) WHERE (finished_at IS NOT NULL);

CREATE INDEX backfill_jobs_object ON public.backfill_jobs USING btree (object_uri, created_at DESC) WHERE (object_uri IS NOT NULL);

CREATE UNIQUE INDEX backfill_jobs_one_pending ON public.backfill_jobs USING btree (kind, community_id, thread_id, object_uri) NULLS NOT DISTINCT WHERE (status = 'pending'::text);

CREATE INDEX backfill_jobs_thread ON public.backfill_jobs USING btree (thread_id, created_at DESC) WHERE (thread_id IS NOT NULL);

CREATE INDEX bookmarks_user ON public.bookmarks USING btree (user_id, created_at DESC, post_id DESC);

CREATE UNIQUE INDEX communities_name_key ON public.communities USING btree (lower(name));

CREATE INDEX community_followers_accepted ON public.community_followers USING btree (community_id) WHERE (state = 'accepted'::text);

CREATE INDEX community_followers_pending ON public.community_followers USING btree (actor_id) WHERE (state = 'pending'::text);

CREATE UNIQUE INDEX conversation_participants_actor ON public.conversation_participants USING btree (conversation_id, actor_id) WHERE (actor_id IS NOT NULL);

CREATE INDEX conversation_participants_conversation ON public.conversation_participants USING btree (conversation_id);

CREATE INDEX conversation_participants_member ON public.conversation_participants USING btree (user_id, conversation_id) WHERE (user_id IS NOT NULL);

CREATE INDEX conversation_participants_recent ON public.conversation_participants USING btree (user_id, last_message_at DESC, conversation_id DESC) WHERE ((user_id IS NOT NULL) AND (left_at IS NULL) AND (last_message_at IS NOT NULL));

CREATE UNIQUE INDEX conversation_participants_user ON public.conversation_participants USING btree (conversation_id, user_id) WHERE (user_id IS NOT NULL);

CREATE INDEX conversations_key ON public.conversations USING btree (key_id);

CREATE INDEX delivery_jobs_due ON public.delivery_jobs USING btree (next_attempt_at, id) WHERE (state = 'pending'::text);

CREATE INDEX delivery_jobs_given_up ON public.delivery_jobs USING btree (updated_at) WHERE (state = ANY (ARRAY['failed'::text, 'dead'::text]));

CREATE INDEX delivery_jobs_in_flight ON public.delivery_jobs USING btree (domain, lease_until) WHERE (state = 'in_flight'::text);

CREATE INDEX delivery_jobs_pending_domain ON public.delivery_jobs USING btree (domain) WHERE (state = 'pending'::text);

CREATE INDEX delivery_jobs_troubled ON public.delivery_jobs USING btree (updated_at DESC) WHERE ((last_error <> ''::text) OR (state = ANY (ARRAY['failed'::text, 'dead'::text])));

CREATE INDEX document_versions_due ON public.document_versions USING btree (next_attempt_at) WHERE (status = 'pending'::text);

CREATE INDEX documents_community_keyset ON public.documents USING btree (community_id, ((featured_at IS NOT NULL)), updated_at, id) WHERE ((deleted_at IS NULL) AND (status = 'published'::text));

CREATE INDEX documents_keyset ON public.documents USING btree (((featured_at IS NOT NULL)), updated_at, id) WHERE ((deleted_at IS NULL) AND (status = 'published'::text));

CREATE INDEX documents_search ON public.documents USING gin (search_vector);

CREATE INDEX documents_tags ON public.documents USING gin (tags);

CREATE INDEX domain_allows_host ON public.domain_allows USING btree (host);

CREATE INDEX domain_blocks_host ON public.domain_blocks USING btree (host);

CREATE INDEX email_changes_user ON public.email_changes USING btree (user_id) WHERE (used_at IS NULL);

CREATE INDEX follow_answers_follow ON public.follow_answers USING btree (follow_id);

CREATE INDEX inbox_items_due ON public.inbox_items USING btree (next_attempt_at, id) WHERE (status = 'pending'::text);

CREATE INDEX inbox_items_leased ON public.inbox_items USING btree (locked_until) WHERE (status = 'processing'::text);

CREATE INDEX instances_unreachable ON public.instances USING btree (domain) WHERE (unreachable_since IS NOT NULL);

CREATE INDEX mail_queue_due ON public.mail_queue USING btree (next_attempt_at, id) WHERE (status = 'pending'::text);

CREATE INDEX mail_queue_finished ON public.mail_queue USING btree (finished_at) WHERE (status <> 'pending'::text);

CREATE INDEX message_attachments_message ON public.message_attachments USING btree (message_id);

CREATE UNIQUE INDEX message_blocks_actor ON public.message_blocks USING btree (user_id, blocked_actor_id) WHERE (blocked_actor_id IS NOT NULL);

CREATE UNIQUE INDEX message_blocks_user ON public.message_blocks USING btree (user_id, blocked_user_id) WHERE (blocked_user_id IS NOT NULL);

CREATE INDEX message_reports_list ON public.message_reports USING btree (state, created_at DESC, id DESC);

CREATE UNIQUE INDEX message_reports_open ON public.message_reports USING btree (message_id, reporter_id) WHERE (state = 'open'::text);

CREATE INDEX messages_conversation ON public.messages USING btree (conversation_id, created_at, id);

CREATE UNIQUE INDEX notifications_once_conversation ON public.notifications USING btree (user_id, conversation_id) WHERE ((conversation_id IS NOT NULL) AND (read_at IS NULL));

CREATE UNIQUE INDEX notifications_once_post ON public.notifications USING btree (user_id, kind, post_id) WHERE (post_id IS NOT NULL);

CREATE UNIQUE INDEX notifications_once_report ON public.notifications USING btree (user_id, kind, report_id) WHERE ((report_id IS NOT NULL) AND (post_id IS NULL));

CREATE UNIQUE INDEX notifications_once_subject ON public.notifications USING btree (user_id, kind, subject_user_id) WHERE (subject_user_id IS NOT NULL);

CREATE INDEX notifications_to_email ON public.notifications USING btree (created_at) WHERE ((emailed_at IS NULL) AND (read_at IS NULL));

CREATE INDEX notifications_unread ON public.notifications USING btree (user_id) WHERE (read_at IS NULL);

CREATE INDEX notifications_user ON public.notifications USING btree (user_id, id DESC);

CREATE INDEX outbox_events_pending ON public.outbox_events USING btree (id) WHERE (processed_at IS NULL);

CREATE INDEX password_resets_user ON public.password_resets USING btree (user_id) WHERE (used_at IS NULL);

CREATE INDEX post_edits_post ON public.post_edits USING btree (post_id, edited_at);

CREATE UNIQUE INDEX post_likes_activity ON public.post_likes USING btree (activity_id) WHERE (activity_id IS NOT NULL);

CREATE INDEX post_likes_actor ON public.post_likes USING btree (actor_id) WHERE (actor_id IS NOT NULL);

CREATE UNIQUE INDEX post_likes_post_actor ON public.post_likes USING btree (post_id, actor_id);

CREATE UNIQUE INDEX post_likes_post_user ON public.post_likes USING btree (post_id, user_id);

CREATE INDEX post_shares_actor ON public.post_shares USING btree (actor_id);

CREATE INDEX posts_id_brin ON public.posts USING brin (id) WITH (pages_per_range='32', autosummarize='on');

CREATE UNIQUE INDEX posts_one_opening ON public.posts USING btree (thread_id) WHERE is_opening;

CREATE INDEX posts_remote_author ON public.posts USING btree (remote_author_id) WHERE (remote_author_id IS NOT NULL);

CREATE INDEX posts_search ON public.posts USING gin (search_vector);

CREATE INDEX posts_thread ON public.posts USING btree (thread_id, created_at, id);

CREATE INDEX posts_thread_number ON public.posts USING btree (thread_id, number);

CREATE INDEX remote_media_due ON public.remote_media USING btree (next_attempt_at, id) WHERE (status = 'pending'::text);

CREATE INDEX remote_moderators_actor ON public.remote_moderators USING btree (actor_id);

CREATE INDEX reports_handled ON public.reports USING btree (state, resolved_at DESC, id DESC) WHERE (state <> 'open'::text);

CREATE INDEX reports_open ON public.reports USING btree (created_at DESC, id DESC) WHERE (state = 'open'::text);

CREATE UNIQUE INDEX reports_open_by_member ON public.reports USING btree (reporter_user_id, post_ids) WHERE ((state = 'open'::text) AND (reporter_user_id IS NOT NULL));

CREATE INDEX sessions_user ON public.sessions USING btree (user_id);

CREATE INDEX thread_follows_thread ON public.thread_follows USING btree (thread_id) INCLUDE (user_id) WHERE following;

CREATE INDEX threads_activity ON public.threads USING btree (last_activity_at DESC, id DESC);

CREATE INDEX threads_community_activity ON public.threads USING btree (community_id, pinned DESC, last_activity_at DESC, id DESC);

CREATE INDEX threads_community_created ON public.threads USING btree (community_id, created_at DESC, id DESC) WHERE (deleted_at IS NULL);

CREATE INDEX threads_community_recent ON public.threads USING btree (community_id, last_activity_at DESC, id DESC) INCLUDE (remote_author_id) WHERE (deleted_at IS NULL);

CREATE INDEX totp_recovery_codes_user ON public.totp_recovery_codes USING btree (user_id) WHERE (used_at IS NULL);

CREATE INDEX users_directory ON public.users USING btree (lower(display_name), id) WHERE (in_directory AND (status = 'approved'::text));

CREATE UNIQUE INDEX users_email_key ON public.users USING btree (lower(email)) WHERE (NOT email_conflict);

CREATE INDEX users_pending ON public.users USING btree (created_at, id) WHERE (status = 'pending'::text);

CREATE UNIQUE INDEX users_username_key ON public.users USING btree (lower(username));

CREATE TRIGGER actors_policy_flags BEFORE INSERT OR UPDATE OF domain, local ON public.actors FOR EACH ROW EXECUTE FUNCTION public.vbg_actors_policy_flags();

CREATE TRIGGER actors_recount_threads AFTER UPDATE ON public.actors FOR EACH ROW WHEN ((old.hidden IS DISTINCT FROM new.hidden)) EXECUTE FUNCTION public.vbg_actors_recount_threads();

CREATE TRIGGER audit_log_no_change BEFORE DELETE OR UPDATE ON public.audit_log FOR EACH ROW EXECUTE FUNCTION public.audit_log_append_only();

CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON public.audit_log FOR EACH STATEMENT EXECUTE FUNCTION public.audit_log_append_only();

CREATE TRIGGER backfill_jobs_notify AFTER INSERT ON public.backfill_jobs FOR EACH ROW EXECUTE FUNCTION public.vbg_notify_backfill();

CREATE TRIGGER conversation_participants_joined AFTER INSERT ON public.conversation_participants FOR EACH ROW WHEN (((new.user_id IS NOT NULL) AND (new.unread > 0))) EXECUTE FUNCTION public.conversation_participants_notify();

CREATE TRIGGER conversation_participants_unread AFTER UPDATE OF unread, left_at ON public.conversation_participants FOR EACH ROW WHEN (((new.user_id IS NOT NULL) AND ((old.unread IS DISTINCT FROM new.unread) OR (old.left_at IS DISTINCT FROM new.left_at)))) EXECUTE FUNCTION public.conversation_participants_notify();

CREATE TRIGGER delivery_jobs_notify AFTER INSERT ON public.delivery_jobs FOR EACH STATEMENT EXECUTE FUNCTION public.vbg_notify_delivery();

CREATE TRIGGER document_versions_trash AFTER DELETE ON public.document_versions FOR EACH ROW EXECUTE FUNCTION public.document_versions_trash();

CREATE TRIGGER documents_follow_opening_post AFTER UPDATE OF deleted_at ON public.posts FOR EACH ROW WHEN ((new.is_opening AND (new.deleted_at IS NOT NULL) AND (old.deleted_at IS NULL))) EXECUTE FUNCTION public.documents_follow_thread();

CREATE TRIGGER documents_follow_thread AFTER UPDATE OF deleted_at ON public.threads FOR EACH ROW WHEN (((new.deleted_at IS NOT NULL) AND (old.deleted_at IS NULL))) EXECUTE FUNCTION public.documents_follow_thread();

CREATE CONSTRAINT TRIGGER documents_version_communities AFTER UPDATE OF name, title, visibility ON public.communities DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (((old.name IS DISTINCT FROM new.name) OR (old.title IS DISTINCT FROM new.title) OR (old.visibility IS DISTINCT FROM new.visibility))) EXECUTE FUNCTION public.documents_bump_version();

CREATE CONSTRAINT TRIGGER documents_version_communities_deleted AFTER DELETE ON public.communities DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.documents_bump_version();

CREATE CONSTRAINT TRIGGER documents_version_files AFTER INSERT OR DELETE OR UPDATE OF number, status, media_type, size, thumbnail_name ON public.document_versions DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.documents_bump_version();

CREATE CONSTRAINT TRIGGER documents_version_rows AFTER INSERT OR DELETE OR UPDATE ON public.documents DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.documents_bump_version();

CREATE TRIGGER domain_allows_policy_version AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON public.domain_allows FOR EACH STATEMENT EXECUTE FUNCTION public.vbg_bump_policy_version();

CREATE TRIGGER domain_blocks_flag_actors AFTER INSERT OR DELETE OR UPDATE ON public.domain_blocks FOR EACH ROW EXECUTE FUNCTION public.vbg_domain_blocks_flag_actors();

CREATE TRIGGER domain_blocks_flag_actors_truncate AFTER TRUNCATE ON public.domain_blocks FOR EACH STATEMENT EXECUTE FUNCTION public.vbg_domain_blocks_flag_actors();

CREATE TRIGGER domain_blocks_policy_version AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON public.domain_blocks FOR EACH STATEMENT EXECUTE FUNCTION public.vbg_bump_policy_version();

CREATE TRIGGER mail_queue_notify AFTER INSERT ON public.mail_queue FOR EACH STATEMENT EXECUTE FUNCTION public.vbg_notify_mail();

CREATE TRIGGER node_settings_policy_version AFTER INSERT OR UPDATE ON public.node_settings FOR EACH ROW WHEN ((new.key = 'federation_mode'::text)) EXECUTE FUNCTION public.vbg_bump_policy_version();

CREATE TRIGGER notifications_deleted AFTER DELETE ON public.notifications REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION public.vbg_notifications_changed();

CREATE TRIGGER notifications_inserted AFTER INSERT ON public.notifications REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION public.vbg_notifications_changed();

CREATE TRIGGER notifications_updated AFTER UPDATE ON public.notifications REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION public.vbg_notifications_changed();

CREATE TRIGGER outbox_events_notify AFTER INSERT ON public.outbox_events FOR EACH STATEMENT EXECUTE FUNCTION public.vbg_notify_outbox();

CREATE TRIGGER posts_bump_thread_version AFTER DELETE OR UPDATE ON public.posts FOR EACH ROW EXECUTE FUNCTION public.posts_bump_thread_version();

CREATE TRIGGER posts_community BEFORE UPDATE OF thread_id ON public.posts FOR EACH ROW EXECUTE FUNCTION public.posts_community();

CREATE TRIGGER posts_insert BEFORE INSERT ON public.posts FOR EACH ROW EXECUTE FUNCTION public.vbg_posts_insert();

CREATE TRIGGER posts_media_drop AFTER UPDATE OF deleted_at ON public.posts FOR EACH ROW WHEN (((old.deleted_at IS NULL) AND (new.deleted_at IS NOT NULL))) EXECUTE FUNCTION public.vbg_post_media_drop();

CREATE CONSTRAINT TRIGGER posts_recount_hidden AFTER INSERT OR UPDATE OF deleted_at ON public.posts DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (((new.remote_author_id IS NOT NULL) AND (NOT new.is_opening))) EXECUTE FUNCTION public.vbg_posts_recount_hidden();

CREATE TRIGGER posts_search_vector BEFORE UPDATE OF source, is_opening ON public.posts FOR EACH ROW EXECUTE FUNCTION public.posts_search_vector();

CREATE TRIGGER remote_media_notify AFTER INSERT ON public.remote_media FOR EACH STATEMENT EXECUTE FUNCTION public.vbg_notify_media();

CREATE TRIGGER remote_media_trash AFTER DELETE ON public.remote_media FOR EACH ROW WHEN ((old.stored_name IS NOT NULL)) EXECUTE FUNCTION public.vbg_remote_media_trash();

CREATE TRIGGER remote_media_trash_notify AFTER INSERT ON public.remote_media_trash FOR EACH STATEMENT EXECUTE FUNCTION public.vbg_notify_media();

CREATE TRIGGER sessions_notify_end AFTER DELETE ON public.sessions FOR EACH ROW EXECUTE FUNCTION public.sessions_notify_end();

CREATE TRIGGER threads_bump_version BEFORE UPDATE ON public.threads FOR EACH ROW WHEN ((old.version = new.version)) EXECUTE FUNCTION public.threads_bump_version();

CREATE TRIGGER threads_community_posts AFTER UPDATE OF community_id ON public.threads FOR EACH ROW WHEN ((old.community_id IS DISTINCT FROM new.community_id)) EXECUTE FUNCTION public.threads_community_posts();

CREATE TRIGGER threads_media_drop AFTER UPDATE OF deleted_at ON public.threads FOR EACH ROW WHEN (((old.deleted_at IS NULL) AND (new.deleted_at IS NOT NULL))) EXECUTE FUNCTION public.vbg_post_media_drop();

CREATE TRIGGER threads_title_search_vector AFTER UPDATE OF title ON public.threads FOR EACH ROW WHEN ((old.title IS DISTINCT FROM new.title)) EXECUTE FUNCTION public.threads_title_search_vector();

CREATE TRIGGER users_notify_change AFTER UPDATE OF username, display_name, role, status, timezone, totp_enabled_at ON public.users FOR EACH ROW WHEN (((old.username IS DISTINCT FROM new.username) OR (old.display_name IS DISTINCT FROM new.display_name) OR (old.role IS DISTINCT FROM new.role) OR (old.status IS DISTINCT FROM new.status) OR (old.timezone IS DISTINCT FROM new.timezone) OR (old.totp_enabled_at IS DISTINCT FROM new.totp_enabled_at))) EXECUTE FUNCTION public.users_notify_change();

ALTER TABLE ONLY public.actors
    ADD CONSTRAINT actors_community_id_fkey FOREIGN KEY (community_id) REFERENCES public.communities(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.actors
    ADD CONSTRAINT actors_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_actor_id_fkey FOREIGN KEY (actor_id) REFERENCES public.users(id);

ALTER TABLE ONLY public.backfill_jobs
    ADD CONSTRAINT backfill_jobs_community_id_fkey FOREIGN KEY (community_id) REFERENCES public.communities(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.backfill_jobs
    ADD CONSTRAINT backfill_jobs_thread_id_fkey FOREIGN KEY (thread_id) REFERENCES public.threads(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.bookmarks
    ADD CONSTRAINT bookmarks_post_id_fkey FOREIGN KEY (post_id) REFERENCES public.posts(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.bookmarks
    ADD CONSTRAINT bookmarks_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.communities
    ADD CONSTRAINT communities_actor_id_fkey FOREIGN KEY (actor_id) REFERENCES public.actors(id);

ALTER TABLE ONLY public.communities
    ADD CONSTRAINT communities_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id);

ALTER TABLE ONLY public.community_experts
    ADD CONSTRAINT community_experts_community_id_fkey FOREIGN KEY (community_id) REFERENCES public.communities(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.community_experts
    ADD CONSTRAINT community_experts_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.community_followers
    ADD CONSTRAINT community_followers_actor_id_fkey FOREIGN KEY (actor_id) REFERENCES public.actors(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.community_followers
    ADD CONSTRAINT community_followers_community_id_fkey FOREIGN KEY (community_id) REFERENCES public.communities(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.community_follows
    ADD CONSTRAINT community_follows_community_id_fkey FOREIGN KEY (community_id) REFERENCES public.communities(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.community_follows
    ADD CONSTRAINT community_follows_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.conversation_participants
    ADD CONSTRAINT conversation_participants_actor_id_fkey FOREIGN KEY (actor_id) REFERENCES public.actors(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.conversation_participants
    ADD CONSTRAINT conversation_participants_conversation_id_fkey FOREIGN KEY (conversation_id) REFERENCES public.conversations(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.conversation_participants
    ADD CONSTRAINT conversation_participants_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.conversations
    ADD CONSTRAINT conversations_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.delivery_jobs
    ADD CONSTRAINT delivery_jobs_activity_id_fkey FOREIGN KEY (activity_id) REFERENCES public.activities(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.document_versions
    ADD CONSTRAINT document_versions_document_id_fkey FOREIGN KEY (document_id) REFERENCES public.documents(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.document_versions
    ADD CONSTRAINT document_versions_uploaded_by_fkey FOREIGN KEY (uploaded_by) REFERENCES public.users(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.documents
    ADD CONSTRAINT documents_author_id_fkey FOREIGN KEY (author_id) REFERENCES public.users(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.documents
    ADD CONSTRAINT documents_community_id_fkey FOREIGN KEY (community_id) REFERENCES public.communities(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.documents
    ADD CONSTRAINT documents_featured_by_fkey FOREIGN KEY (featured_by) REFERENCES public.users(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.documents
    ADD CONSTRAINT documents_thread_id_fkey FOREIGN KEY (thread_id) REFERENCES public.threads(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.domain_allows
    ADD CONSTRAINT domain_allows_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.domain_blocks
    ADD CONSTRAINT domain_blocks_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.email_changes
    ADD CONSTRAINT email_changes_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.group_follows
    ADD CONSTRAINT group_follows_community_id_fkey FOREIGN KEY (community_id) REFERENCES public.communities(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.group_follows
    ADD CONSTRAINT group_follows_follower_id_fkey FOREIGN KEY (follower_id) REFERENCES public.actors(id);

ALTER TABLE ONLY public.group_follows
    ADD CONSTRAINT group_follows_requested_by_fkey FOREIGN KEY (requested_by) REFERENCES public.users(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.instances
    ADD CONSTRAINT instances_approved_by_fkey FOREIGN KEY (approved_by) REFERENCES public.users(id);

ALTER TABLE ONLY public.mail_queue
    ADD CONSTRAINT mail_queue_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.message_attachments
    ADD CONSTRAINT message_attachments_message_id_fkey FOREIGN KEY (message_id) REFERENCES public.messages(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.message_blocks
    ADD CONSTRAINT message_blocks_blocked_actor_id_fkey FOREIGN KEY (blocked_actor_id) REFERENCES public.actors(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.message_blocks
    ADD CONSTRAINT message_blocks_blocked_user_id_fkey FOREIGN KEY (blocked_user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.message_blocks
    ADD CONSTRAINT message_blocks_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.message_preferences
    ADD CONSTRAINT message_preferences_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.message_reports
    ADD CONSTRAINT message_reports_message_id_fkey FOREIGN KEY (message_id) REFERENCES public.messages(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.message_reports
    ADD CONSTRAINT message_reports_reporter_id_fkey FOREIGN KEY (reporter_id) REFERENCES public.users(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.message_reports
    ADD CONSTRAINT message_reports_resolved_by_fkey FOREIGN KEY (resolved_by) REFERENCES public.users(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_author_actor_id_fkey FOREIGN KEY (author_actor_id) REFERENCES public.actors(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_author_user_id_fkey FOREIGN KEY (author_user_id) REFERENCES public.users(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.messages
    ADD CONSTRAINT messages_conversation_id_fkey FOREIGN KEY (conversation_id) REFERENCES public.conversations(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.notification_settings
    ADD CONSTRAINT notification_settings_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.notifications
    ADD CONSTRAINT notifications_actor_remote_id_fkey FOREIGN KEY (actor_remote_id) REFERENCES public.actors(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.notifications
    ADD CONSTRAINT notifications_actor_user_id_fkey FOREIGN KEY (actor_user_id) REFERENCES public.users(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.notifications
    ADD CONSTRAINT notifications_conversation_id_fkey FOREIGN KEY (conversation_id) REFERENCES public.conversations(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.notifications
    ADD CONSTRAINT notifications_post_id_fkey FOREIGN KEY (post_id) REFERENCES public.posts(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.notifications
    ADD CONSTRAINT notifications_report_id_fkey FOREIGN KEY (report_id) REFERENCES public.reports(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.notifications
    ADD CONSTRAINT notifications_subject_user_id_fkey FOREIGN KEY (subject_user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.notifications
    ADD CONSTRAINT notifications_thread_id_fkey FOREIGN KEY (thread_id) REFERENCES public.threads(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.notifications
    ADD CONSTRAINT notifications_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.password_resets
    ADD CONSTRAINT password_resets_issued_by_fkey FOREIGN KEY (issued_by) REFERENCES public.users(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.password_resets
    ADD CONSTRAINT password_resets_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.post_edits
    ADD CONSTRAINT post_edits_editor_actor_id_fkey FOREIGN KEY (editor_actor_id) REFERENCES public.actors(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.post_edits
    ADD CONSTRAINT post_edits_editor_id_fkey FOREIGN KEY (editor_id) REFERENCES public.users(id);

ALTER TABLE ONLY public.post_edits
    ADD CONSTRAINT post_edits_post_id_fkey FOREIGN KEY (post_id) REFERENCES public.posts(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.post_likes
    ADD CONSTRAINT post_likes_actor_id_fkey FOREIGN KEY (actor_id) REFERENCES public.actors(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.post_likes
    ADD CONSTRAINT post_likes_post_id_fkey FOREIGN KEY (post_id) REFERENCES public.posts(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.post_likes
    ADD CONSTRAINT post_likes_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.post_shares
    ADD CONSTRAINT post_shares_actor_id_fkey FOREIGN KEY (actor_id) REFERENCES public.actors(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.post_shares
    ADD CONSTRAINT post_shares_post_id_fkey FOREIGN KEY (post_id) REFERENCES public.posts(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.posts
    ADD CONSTRAINT posts_author_id_fkey FOREIGN KEY (author_id) REFERENCES public.users(id);

ALTER TABLE ONLY public.posts
    ADD CONSTRAINT posts_parent_id_fkey FOREIGN KEY (parent_id) REFERENCES public.posts(id);

ALTER TABLE ONLY public.posts
    ADD CONSTRAINT posts_remote_author_id_fkey FOREIGN KEY (remote_author_id) REFERENCES public.actors(id);

ALTER TABLE ONLY public.posts
    ADD CONSTRAINT posts_thread_id_fkey FOREIGN KEY (thread_id) REFERENCES public.threads(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.remote_media
    ADD CONSTRAINT remote_media_post_id_fkey FOREIGN KEY (post_id) REFERENCES public.posts(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.remote_moderators
    ADD CONSTRAINT remote_moderators_actor_id_fkey FOREIGN KEY (actor_id) REFERENCES public.actors(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.remote_moderators
    ADD CONSTRAINT remote_moderators_community_id_fkey FOREIGN KEY (community_id) REFERENCES public.communities(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.reports
    ADD CONSTRAINT reports_community_id_fkey FOREIGN KEY (community_id) REFERENCES public.communities(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.reports
    ADD CONSTRAINT reports_reporter_actor_id_fkey FOREIGN KEY (reporter_actor_id) REFERENCES public.actors(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.reports
    ADD CONSTRAINT reports_reporter_user_id_fkey FOREIGN KEY (reporter_user_id) REFERENCES public.users(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.reports
    ADD CONSTRAINT reports_resolved_by_fkey FOREIGN KEY (resolved_by) REFERENCES public.users(id);

ALTER TABLE ONLY public.sessions
    ADD CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.site_pages
    ADD CONSTRAINT site_pages_updated_by_fkey FOREIGN KEY (updated_by) REFERENCES public.users(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.thread_follows
    ADD CONSTRAINT thread_follows_thread_id_fkey FOREIGN KEY (thread_id) REFERENCES public.threads(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.thread_follows
    ADD CONSTRAINT thread_follows_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.thread_reads
    ADD CONSTRAINT thread_reads_thread_id_fkey FOREIGN KEY (thread_id) REFERENCES public.threads(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.thread_reads
    ADD CONSTRAINT thread_reads_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.threads
    ADD CONSTRAINT threads_author_id_fkey FOREIGN KEY (author_id) REFERENCES public.users(id);

ALTER TABLE ONLY public.threads
    ADD CONSTRAINT threads_community_id_fkey FOREIGN KEY (community_id) REFERENCES public.communities(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.threads
    ADD CONSTRAINT threads_expert_answer_id_fkey FOREIGN KEY (expert_answer_id) REFERENCES public.posts(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.threads
    ADD CONSTRAINT threads_remote_author_id_fkey FOREIGN KEY (remote_author_id) REFERENCES public.actors(id);

ALTER TABLE ONLY public.totp_recovery_codes
    ADD CONSTRAINT totp_recovery_codes_user_id_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_reviewed_by_fkey FOREIGN KEY (reviewed_by) REFERENCES public.users(id);

-- Instance policy: domain blocks (Mastodon semantics), allowlist, federation mode, and SQL helpers that hide blocked content.

-- Domains are stored normalised by federation.policy.normalise_domain: lowercase ASCII
-- (IDNA), no trailing dot, "host" or "host:port" (non-default port), IPv6 in brackets.
-- These helpers split that form; they mirror federation.policy's pure functions.
CREATE FUNCTION vbg_domain_host(d text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT rtrim(CASE WHEN d LIKE '[%' THEN split_part(lower(d), ']', 1) || ']'
                      ELSE split_part(lower(d), ':', 1) END, '.')
$$;

CREATE FUNCTION vbg_domain_port(d text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT CASE WHEN d LIKE '[%' THEN substring(d FROM '^\[[^]]*\]:([0-9]+)$')
                ELSE substring(d FROM ':([0-9]+)$') END
$$;

-- The host itself and every parent domain ("a.b.example" -> a.b.example, b.example, example);
-- an IP address only matches itself.
CREATE FUNCTION vbg_domain_suffixes(host text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT CASE WHEN host LIKE '[%' OR host ~ '^[0-9.]+$' THEN ARRAY[host]
           ELSE ARRAY(SELECT array_to_string(labels[i:], '.')
                      FROM (SELECT string_to_array(host, '.') AS labels) s,
                           generate_subscripts(s.labels, 1) AS i
                      ORDER BY i) END
$$;

-- Does the rule domain cover d (itself or a subdomain; a rule without a port covers every port)?
CREATE FUNCTION vbg_domain_covers(rule text, d text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT vbg_domain_host(rule) = ANY (vbg_domain_suffixes(vbg_domain_host(d)))
       AND (vbg_domain_port(rule) IS NULL OR vbg_domain_port(rule) IS NOT DISTINCT FROM vbg_domain_port(d))
$$;

CREATE TABLE domain_blocks (
    id bigserial PRIMARY KEY,
    domain text NOT NULL UNIQUE,
    -- noop: kept for Mastodon imports whose row only rejects reports
    severity text NOT NULL CHECK (severity IN ('suspend', 'silence', 'reject_media', 'noop')),
    reject_media boolean NOT NULL DEFAULT false,
    reject_reports boolean NOT NULL DEFAULT false,
    public_comment text NOT NULL DEFAULT '',
    private_comment text NOT NULL DEFAULT '',
    obfuscate boolean NOT NULL DEFAULT false,
    created_by bigint REFERENCES users (id) ON DELETE SET NULL,
    created_by_label text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    host text GENERATED ALWAYS AS (vbg_domain_host(domain)) STORED,
    port text GENERATED ALWAYS AS (vbg_domain_port(domain)) STORED
);
CREATE INDEX domain_blocks_host ON domain_blocks (host);

CREATE TABLE domain_allows (
    id bigserial PRIMARY KEY,
    domain text NOT NULL UNIQUE,
    note text NOT NULL DEFAULT '',
    created_by bigint REFERENCES users (id) ON DELETE SET NULL,
    created_by_label text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    host text GENERATED ALWAYS AS (vbg_domain_host(domain)) STORED,
    port text GENERATED ALWAYS AS (vbg_domain_port(domain)) STORED
);
CREATE INDEX domain_allows_host ON domain_allows (host);

-- Node-wide settings changed at run time by admins (not the environment's: those are read once).
CREATE TABLE node_settings (
    key text PRIMARY KEY,
    value jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- A new node starts closed: only listed partner instances may federate.
INSERT INTO node_settings (key, value) VALUES ('federation_mode', '"allowlist"');
-- A fresh random token after every policy change: processes cache the policy under it.
INSERT INTO node_settings (key, value) VALUES ('policy_version', to_jsonb(gen_random_uuid()::text));

CREATE FUNCTION vbg_bump_policy_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE node_settings SET value = to_jsonb(gen_random_uuid()::text), updated_at = now()
    WHERE key = 'policy_version';
    RETURN NULL;
END
$$;
CREATE TRIGGER domain_blocks_policy_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON domain_blocks
    FOR EACH STATEMENT EXECUTE FUNCTION vbg_bump_policy_version();
CREATE TRIGGER domain_allows_policy_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON domain_allows
    FOR EACH STATEMENT EXECUTE FUNCTION vbg_bump_policy_version();
CREATE TRIGGER node_settings_policy_version AFTER INSERT OR UPDATE ON node_settings
    FOR EACH ROW WHEN (NEW.key = 'federation_mode') EXECUTE FUNCTION vbg_bump_policy_version();

-- Is this domain (or a parent domain) blocked with one of these severities?
CREATE FUNCTION vbg_domain_blocked(d text, severities text[]) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT d IS NOT NULL AND EXISTS (
        SELECT 1 FROM domain_blocks b
        WHERE b.host = ANY (vbg_domain_suffixes(vbg_domain_host(d)))
          AND (b.port IS NULL OR b.port = vbg_domain_port(d))
          AND b.severity = ANY (severities))
$$;

-- For readers (thread lists, thread pages, search): content whose remote author is on a
-- suspended domain leaves every page; silenced content stays out of public lists.
-- NULL (a local author) is never hidden.
CREATE FUNCTION vbg_actor_hidden(actor_id bigint) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT actor_id IS NOT NULL AND coalesce(
        (SELECT vbg_domain_blocked(a.domain, ARRAY['suspend']) FROM actors a WHERE a.id = actor_id), false)
$$;

CREATE FUNCTION vbg_actor_silenced(actor_id bigint) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT actor_id IS NOT NULL AND coalesce(
        (SELECT vbg_domain_blocked(a.domain, ARRAY['suspend', 'silence']) FROM actors a WHERE a.id = actor_id),
        false)
$$;

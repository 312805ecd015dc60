-- Instance policy precomputed on actors (hidden, silenced), so forum reads hide blocked authors with a column, not a function call per row.

-- vbg_actor_hidden/vbg_actor_silenced (0050) are right but cost a SQL function call per
-- row (~50 µs: they hold sub-selects, so PostgreSQL never inlines them); a thread page
-- filters every post of the thread. Here the answer is kept on the actor row instead and
-- recomputed when a block covering it changes (blocks are rare, reads constant).

-- Every rule domain that can cover the actor domain d: its host and each parent domain,
-- and the same with ":port" when d has a non-default port. Rules are stored in the same
-- normalised form, so "rule covers d" (vbg_domain_covers) is "rule = ANY (keys of d)".
CREATE FUNCTION vbg_policy_keys(d text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT q.s || ARRAY(SELECT x || ':' || q.p FROM unnest(q.s) AS x WHERE q.p IS NOT NULL)
    FROM (SELECT vbg_domain_suffixes(vbg_domain_host(d)) AS s, vbg_domain_port(d) AS p) q
$$;

-- (hidden, silenced) for an actor whose domain has these keys, under the current blocks.
CREATE FUNCTION vbg_policy_flags(keys text[], OUT hidden boolean, OUT silenced boolean)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(bool_or(b.severity = 'suspend'), false),
           coalesce(bool_or(b.severity IN ('suspend', 'silence')), false)
    FROM domain_blocks b WHERE b.domain = ANY (keys)
$$;

ALTER TABLE actors ADD COLUMN policy_keys text[] GENERATED ALWAYS AS (vbg_policy_keys(domain)) STORED;
-- on a suspended domain: its content leaves every page (as vbg_actor_hidden)
ALTER TABLE actors ADD COLUMN hidden boolean NOT NULL DEFAULT false;
-- on a suspended or silenced domain: its content stays out of public lists (as vbg_actor_silenced)
ALTER TABLE actors ADD COLUMN silenced boolean NOT NULL DEFAULT false;
CREATE INDEX actors_policy_keys ON actors USING gin (policy_keys) WHERE NOT local;

UPDATE actors a SET (hidden, silenced) = (SELECT f.hidden, f.silenced FROM vbg_policy_flags(a.policy_keys) f)
WHERE NOT a.local;

-- A new remote actor, or one whose domain changes, takes the flags of the current blocks.
-- (An actor inserted while a block of its domain is being committed may miss it; such a
-- domain can neither deliver to us nor be fetched once the block is in force.)
CREATE FUNCTION vbg_actors_policy_flags() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER actors_policy_flags BEFORE INSERT OR UPDATE OF domain, local ON actors
    FOR EACH ROW EXECUTE FUNCTION vbg_actors_policy_flags();

-- A block added, changed or lifted: recompute the actors its domain covers, before and
-- after the change (the GIN index finds them), under every block then in force.
CREATE FUNCTION vbg_domain_blocks_flag_actors() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER domain_blocks_flag_actors AFTER INSERT OR UPDATE OR DELETE ON domain_blocks
    FOR EACH ROW EXECUTE FUNCTION vbg_domain_blocks_flag_actors();
CREATE TRIGGER domain_blocks_flag_actors_truncate AFTER TRUNCATE ON domain_blocks
    FOR EACH STATEMENT EXECUTE FUNCTION vbg_domain_blocks_flag_actors();

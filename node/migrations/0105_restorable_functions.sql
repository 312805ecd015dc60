-- SQL helpers name the functions they call with their schema, so a pg_dump restores (pg_restore runs with an empty search_path).

-- pg_dump and pg_restore run with search_path = '' (a security measure), and PostgreSQL
-- checks a SQL function's body when a generated column or an index uses it: an
-- unqualified call to another of our functions is then "function does not exist", and
-- `vbg-node admin restore` stops at CREATE TABLE actors. Qualified calls keep the
-- functions inlinable (a SET search_path clause would prevent that).

CREATE OR REPLACE FUNCTION vbg_tsvector(title text, body text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(to_tsvector('french', public.vbg_fold(coalesce(title, ''))), 'A')
        || setweight(to_tsvector('french', public.vbg_fold(coalesce(body, ''))), 'B')
$$;

CREATE OR REPLACE FUNCTION vbg_domain_covers(rule text, d text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT public.vbg_domain_host(rule) = ANY (public.vbg_domain_suffixes(public.vbg_domain_host(d)))
       AND (public.vbg_domain_port(rule) IS NULL
            OR public.vbg_domain_port(rule) IS NOT DISTINCT FROM public.vbg_domain_port(d))
$$;

CREATE OR REPLACE FUNCTION vbg_policy_keys(d text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT q.s || ARRAY(SELECT x || ':' || q.p FROM unnest(q.s) AS x WHERE q.p IS NOT NULL)
    FROM (SELECT public.vbg_domain_suffixes(public.vbg_domain_host(d)) AS s,
                 public.vbg_domain_port(d) AS p) q
$$;

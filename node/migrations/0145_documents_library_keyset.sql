-- Library pages go by keyset (featured first, then latest) and a process keeps their rendered list under a library version that every change to what a list shows replaces.

-- The order is (featured, updated_at, id) all descending, so a page after a cursor is one
-- row comparison the index answers: ((featured_at IS NOT NULL), updated_at, id) < cursor.
CREATE INDEX documents_community_keyset
    ON documents (community_id, (featured_at IS NOT NULL), updated_at, id)
    WHERE deleted_at IS NULL AND status = 'published';
CREATE INDEX documents_keyset
    ON documents ((featured_at IS NOT NULL), updated_at, id)
    WHERE deleted_at IS NULL AND status = 'published';
DROP INDEX documents_community_list;
DROP INDEX documents_featured_list;

-- node_settings key 'documents_version' (owned by node.documents): a fresh token after any
-- change to documents, their versions, or the name, title or visibility of a community.
-- Deferred to the commit, so the row is locked only while committing (no lock order to
-- keep with anything else the transaction does), and a reader sees the new token and
-- the new rows together. Remote authors' hidden/silenced flags follow the policy
-- version (migration 0050), which the cache key holds too.
INSERT INTO node_settings (key, value) VALUES ('documents_version', to_jsonb(gen_random_uuid()::text));

CREATE FUNCTION documents_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE public.node_settings SET value = to_jsonb(gen_random_uuid()::text), updated_at = now()
    WHERE key = 'documents_version';
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER documents_version_rows AFTER INSERT OR UPDATE OR DELETE ON documents
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION documents_bump_version();
-- Not attempts/next_attempt_at/error: the documents worker's claims and retries show nothing.
CREATE CONSTRAINT TRIGGER documents_version_files
    AFTER INSERT OR DELETE OR UPDATE OF number, status, media_type, size, thumbnail_name ON document_versions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION documents_bump_version();
CREATE CONSTRAINT TRIGGER documents_version_communities AFTER UPDATE OF name, title, visibility ON communities
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.title IS DISTINCT FROM NEW.title
          OR OLD.visibility IS DISTINCT FROM NEW.visibility)
    EXECUTE FUNCTION documents_bump_version();

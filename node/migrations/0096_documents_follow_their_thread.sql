-- A document leaves with its discussion: whatever deletes the opening post or the thread (the forum, a remote Delete, an account deletion) marks the document deleted and puts its files in the trash, in the same transaction.

CREATE FUNCTION documents_follow_thread() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER documents_follow_opening_post AFTER UPDATE OF deleted_at ON posts
    FOR EACH ROW WHEN (NEW.is_opening AND NEW.deleted_at IS NOT NULL AND OLD.deleted_at IS NULL)
    EXECUTE FUNCTION documents_follow_thread();
CREATE TRIGGER documents_follow_thread AFTER UPDATE OF deleted_at ON threads
    FOR EACH ROW WHEN (NEW.deleted_at IS NOT NULL AND OLD.deleted_at IS NULL)
    EXECUTE FUNCTION documents_follow_thread();

-- Rows removed outright (a draft abandoned, a community deleted) leave their file names behind too.
CREATE FUNCTION document_versions_trash() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO document_trash (stored_name)
    SELECT n FROM unnest(ARRAY[OLD.stored_name, OLD.thumbnail_name]) n WHERE n IS NOT NULL
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER document_versions_trash AFTER DELETE ON document_versions
    FOR EACH ROW EXECUTE FUNCTION document_versions_trash();

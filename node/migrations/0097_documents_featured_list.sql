-- The node library (/documents) lists featured documents first, then the latest: an index in that order lets a page stop after 30 rows.
CREATE INDEX documents_featured_list ON documents ((featured_at IS NULL), updated_at DESC, id DESC)
    WHERE deleted_at IS NULL AND status = 'published';
DROP INDEX documents_list;

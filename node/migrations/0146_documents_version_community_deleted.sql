-- A library page keeps the community it found under the documents version (node.web.document_views): a deleted community replaces the version too.

CREATE CONSTRAINT TRIGGER documents_version_communities_deleted AFTER DELETE ON communities
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION documents_bump_version();

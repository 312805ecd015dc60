-- The open reports page by keyset (created_at, id): the id breaks ties between reports received in the same microsecond.
DROP INDEX reports_open;
CREATE INDEX reports_open ON reports (created_at DESC, id DESC) WHERE state = 'open';

-- Leaner delivery queue: done jobs are deleted (the ledger keeps deliveries), fewer indexes to maintain per state change.

-- Fan-out already de-duplicates inboxes; the constraint cost an index entry per state change.
ALTER TABLE delivery_jobs DROP CONSTRAINT delivery_jobs_activity_id_inbox_key;
DROP INDEX delivery_jobs_finished;
DROP INDEX delivery_jobs_domain;
-- Only rows entering 'pending' (fan-out, retries) touch these two.
CREATE INDEX delivery_jobs_pending_domain ON delivery_jobs (domain) WHERE state = 'pending';
CREATE INDEX delivery_jobs_given_up ON delivery_jobs (updated_at) WHERE state IN ('failed', 'dead');

-- Activities are kept (served later as /activities/{uuid}); nothing deletes them, so the
-- foreign key from jobs needs no index on delivery_jobs.activity_id.

-- The ledger is read by object only.
DROP INDEX deliveries_ledger_domain;

-- Claims skip unreachable instances: find them without scanning every instance.
CREATE INDEX instances_unreachable ON instances (domain) WHERE unreachable_since IS NOT NULL;

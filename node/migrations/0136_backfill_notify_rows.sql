-- Wake the backfill worker only when a job was really inserted. The statement trigger of 0135 fired for
-- every INSERT, also one that inserted nothing (the thread page asks for a remote thread's backfill on each
-- member's visit; nearly always a job ran lately and nothing is inserted): a NOTIFY per page view, each
-- taking PostgreSQL's notification queue lock at commit. A row trigger fires only for inserted rows, and
-- PostgreSQL sends one notification per transaction for identical ones.
DROP TRIGGER backfill_jobs_notify ON backfill_jobs;
CREATE TRIGGER backfill_jobs_notify AFTER INSERT ON backfill_jobs
    FOR EACH ROW EXECUTE FUNCTION vbg_notify_backfill();

-- The admins' delivery page lists the latest troubled jobs (an error, or given up) by this index, not by reading every pending job of a fan-out to 1,000 instances.
CREATE INDEX delivery_jobs_troubled ON delivery_jobs (updated_at DESC) WHERE last_error <> '' OR state IN ('failed', 'dead');

-- The history is read a page at a time, newest first, by the key (started_at, id): a page
-- starts after the (started_at, id) of the last row of the page before it, so a run inserted
-- meanwhile never shifts a page. These indexes hold that exact order (scanned backwards), with
-- and without a job name; they also serve everything the two indexes they replace served.
CREATE INDEX job_logs_started_at_id_idx ON job_logs (started_at, id);
CREATE INDEX job_logs_job_name_started_at_id_idx ON job_logs (job_name, started_at, id);
DROP INDEX job_logs_started_at_idx;
DROP INDEX job_logs_job_name_idx;

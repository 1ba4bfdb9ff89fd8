-- Every outcome a later decision may look back on, not only finished runs: a finished run
-- (with what it covered), an abandoned run and a missed slot. And a skipped delivery keeps
-- why it was skipped apart from the errors of a failed one.

ALTER TABLE runs RENAME TO outcomes;
ALTER TABLE outcomes RENAME COLUMN finished_at TO occurred_at;
ALTER INDEX runs_job_name_finished_at_idx RENAME TO outcomes_job_name_occurred_at_idx;

-- A job can be abandoned and then finish late: one row per (job, event type), so the late
-- JobFinished is admitted (and gets its email) although the abandonment was remembered.
ALTER TABLE outcomes ADD COLUMN event_type text NOT NULL DEFAULT 'JobFinished'
    CHECK (event_type IN ('JobFinished', 'JobAbandoned', 'JobMissed'));
ALTER TABLE outcomes ALTER COLUMN event_type DROP DEFAULT;
ALTER TABLE outcomes DROP CONSTRAINT runs_pkey;
ALTER TABLE outcomes ADD PRIMARY KEY (job_id, event_type);

ALTER TABLE outcomes DROP CONSTRAINT runs_status_check;
ALTER TABLE outcomes ADD CONSTRAINT outcomes_status_check
    CHECK (status IN ('completed', 'failed', 'abandoned', 'missed'));
-- Abandoned runs and missed slots have no counts.
ALTER TABLE outcomes ALTER COLUMN daos_total DROP NOT NULL;

-- What a finished run covered: 'all', 'subset', or NULL when its producer did not say.
-- Rows from before this column are of unknown scope, so none of them is a drop baseline.
ALTER TABLE outcomes ADD COLUMN scope text CHECK (scope IN ('all', 'subset'));
-- notifier.history.Remembered.is_baseline, kept at write time: the drop check reads only
-- such rows.
ALTER TABLE outcomes ADD COLUMN is_baseline boolean NOT NULL DEFAULT false;
CREATE INDEX outcomes_baseline_idx ON outcomes (job_name, occurred_at DESC) WHERE is_baseline;

-- Abandonments and missed slots recorded before this migration have their delivery records:
-- remember them, so that the next completed run is seen as a recovery.
INSERT INTO outcomes (job_id, event_type, job_name, status, occurred_at, event_id)
SELECT DISTINCT ON (job_id, event_type)
       job_id, event_type, job_name,
       CASE event_type WHEN 'JobAbandoned' THEN 'abandoned' ELSE 'missed' END,
       (alert ->> 'occurred_at')::timestamptz, event_id
FROM deliveries
WHERE event_type IN ('JobAbandoned', 'JobMissed')
ORDER BY job_id, event_type, created_at
ON CONFLICT (job_id, event_type) DO NOTHING;

-- Why a delivery was skipped (its channel is not configured); last_error stays for failures.
ALTER TABLE deliveries ADD COLUMN reason text;
UPDATE deliveries SET reason = substr(last_error, length('skipped: ') + 1), last_error = NULL
WHERE state = 'skipped' AND last_error LIKE 'skipped: %';

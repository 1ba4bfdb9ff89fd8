-- A missed schedule slot (JobMissed) is a row of job_logs too: the story's status stays
-- running|completed|failed ('failed' for a missed slot), and two columns say what really happened.

-- The slot a JobMissed reports (null for a run).
ALTER TABLE job_logs ADD COLUMN scheduled_for timestamptz;

-- What became of the run, for the API and the statistics; derived from the folded columns so
-- the fold and the rebuild have nothing more to agree on. A JobFinished always wins.
ALTER TABLE job_logs ADD COLUMN outcome text NOT NULL GENERATED ALWAYS AS (
    CASE WHEN expected_events IS NULL AND scheduled_for IS NOT NULL THEN 'missed'
         WHEN expected_events IS NULL AND abandoned_at IS NOT NULL THEN 'abandoned'
         WHEN status = 'completed' THEN 'completed'
         WHEN status = 'failed' THEN 'failed'
         ELSE 'running' END
) STORED;

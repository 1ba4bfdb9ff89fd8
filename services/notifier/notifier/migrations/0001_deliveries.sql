-- The notifier's own state: what it has processed, what it remembers of each run, and one
-- delivery record per (job_id, channel, kind). Names are unqualified: the runner sets
-- search_path to the notifier's schema.

-- Every consumed event, so that a redelivery is recognised and changes nothing.
CREATE TABLE processed_events (
    event_id     uuid PRIMARY KEY,
    event_type   text        NOT NULL,
    job_id       uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);

-- The JobFinished events seen, per job name: the "previous run" for recovery and drop checks.
CREATE TABLE runs (
    job_id       uuid PRIMARY KEY,
    job_name     text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('completed', 'failed')),
    daos_total   integer     NOT NULL,
    finished_at  timestamptz NOT NULL,
    event_id     uuid        NOT NULL
);
CREATE INDEX runs_job_name_finished_at_idx ON runs (job_name, finished_at DESC);

CREATE TABLE deliveries (
    job_id          uuid        NOT NULL,
    channel         text        NOT NULL CHECK (channel IN ('email', 'slack')),
    kind            text        NOT NULL,
    state           text        NOT NULL DEFAULT 'pending'
                                CHECK (state IN ('pending', 'sent', 'failed', 'skipped')),
    job_name        text        NOT NULL,
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    -- notifier.decisions.Alert as JSON: a restart renders exactly the same message.
    alert           jsonb       NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    provider_id     text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- A lease: the process sending this record owns it until then (renewed per attempt), so a
    -- second notifier or the periodic resume never sends it twice at the same time.
    claimed_until   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    PRIMARY KEY (job_id, channel, kind)
);
CREATE INDEX deliveries_pending_idx ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_job_event_type_idx ON deliveries (job_id, event_type);

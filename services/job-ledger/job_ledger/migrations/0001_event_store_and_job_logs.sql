-- The ledger's schema. Names are unqualified: the runner sets search_path to the service's schema.

-- The event store: every event exactly once (event_id), every recalculator step once per job.
CREATE TABLE job_events (
    event_id        uuid        PRIMARY KEY,
    job_id          uuid        NOT NULL,
    job_name        text        NOT NULL,
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL,
    sequence        integer     CHECK (sequence >= 0),
    occurred_at     timestamptz NOT NULL,
    payload         jsonb       NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX job_events_job_sequence_key ON job_events (job_id, sequence)
    WHERE sequence IS NOT NULL;
CREATE INDEX job_events_job_idx ON job_events (job_id, sequence NULLS LAST, occurred_at);

CREATE TYPE job_status AS ENUM ('running', 'completed', 'failed');

-- The projection the admin reads (the story's AC1), folded from job_events.
CREATE TABLE job_logs (
    id                uuid        PRIMARY KEY,
    job_name          text        NOT NULL,
    started_at        timestamptz NOT NULL,
    completed_at      timestamptz,
    status            job_status  NOT NULL DEFAULT 'running',
    daos_processed    integer     NOT NULL DEFAULT 0,
    daos_total        integer     NOT NULL DEFAULT 0,
    errors            jsonb,
    duration_ms       integer,
    cache_invalidated boolean     NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    -- What the ledger needs beside the story's columns.
    trigger           text,
    daos_failed       integer     NOT NULL DEFAULT 0,
    fatal_error       text,
    last_event_at     timestamptz,
    last_sequence     integer,
    events_received   integer     NOT NULL DEFAULT 0,
    expected_events   integer,    -- JobFinished.sequence + 1, once JobFinished has arrived
    has_started       boolean     NOT NULL DEFAULT false,
    abandoned_at      timestamptz
);
CREATE INDEX job_logs_job_name_idx ON job_logs (job_name);
CREATE INDEX job_logs_started_at_idx ON job_logs (started_at DESC);
CREATE INDEX job_logs_running_idx ON job_logs (last_event_at) WHERE status = 'running';

-- Whether each alert went out, from the notifier's NotificationSent / NotificationFailed.
CREATE TABLE job_notifications (
    job_id      uuid        NOT NULL,
    channel     text        NOT NULL,
    kind        text        NOT NULL,
    state       text        NOT NULL CHECK (state IN ('sent', 'failed')),
    attempts    integer     NOT NULL,
    provider_id text,
    error       text,
    event_id    uuid        NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (job_id, channel, kind)
);

-- The schedule slots already checked for a missed run, so a restart does not repeat JobMissed.
CREATE TABLE schedule_checks (
    job_name      text        NOT NULL,
    scheduled_for timestamptz NOT NULL,
    outcome       text        NOT NULL CHECK (outcome IN ('started', 'missed')),
    checked_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_name, scheduled_for)
);

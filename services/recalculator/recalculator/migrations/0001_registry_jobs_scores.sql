-- The recalculator's schema. Names are unqualified: the runner sets search_path to the schema.

-- The DAO registry, filled by `recalculator daos import`.
CREATE TABLE daos (
    id              text        PRIMARY KEY,
    name            text        NOT NULL,
    snapshot_space  text        NOT NULL,
    active          boolean     NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX daos_active_idx ON daos (id) WHERE active;

-- One row per run. next_sequence is the next event sequence to hand out: every per-DAO
-- transaction takes it with UPDATE ... RETURNING, which locks this row until commit, so
-- sequences are contiguous even when a transaction rolls back.
CREATE TABLE jobs (
    id                uuid        PRIMARY KEY,
    job_name          text        NOT NULL,
    trigger           text        NOT NULL CHECK (trigger IN ('cron', 'manual', 'retry')),
    request_id        uuid        UNIQUE,
    dao_ids           text[],
    status            text        NOT NULL DEFAULT 'running'
                                  CHECK (status IN ('running', 'completed', 'failed')),
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz,
    next_sequence     integer     NOT NULL DEFAULT 1 CHECK (next_sequence >= 1),
    daos_total        integer     NOT NULL DEFAULT 0,
    daos_processed    integer     NOT NULL DEFAULT 0,
    daos_failed       integer     NOT NULL DEFAULT 0,
    cache_invalidated boolean     NOT NULL DEFAULT false,
    fatal_error       text
);
CREATE INDEX jobs_name_started_idx ON jobs (job_name, started_at DESC);

-- Every run's scores are kept: rankings read the latest per DAO, history reads them all.
CREATE TABLE gvs_scores (
    job_id       uuid        NOT NULL REFERENCES jobs (id),
    dao_id       text        NOT NULL REFERENCES daos (id),
    score        numeric(5, 2) NOT NULL CHECK (score >= 0 AND score <= 100),
    components   jsonb       NOT NULL,
    computed_at  timestamptz NOT NULL,
    PRIMARY KEY (job_id, dao_id)
);
CREATE INDEX gvs_scores_dao_idx ON gvs_scores (dao_id, computed_at DESC);

-- Each DAO's failure, written with its DaoFailed: JobFinished lists the first 100 from here,
-- so its counts and failures always match the events that committed.
CREATE TABLE dao_failures (
    job_id    uuid    NOT NULL REFERENCES jobs (id),
    sequence  integer NOT NULL,
    dao_id    text    NOT NULL,
    dao_name  text    NOT NULL,
    error     text    NOT NULL,
    attempts  integer NOT NULL,
    PRIMARY KEY (job_id, sequence)
);

-- An alert whose channel is not configured is 'skipped' (NotificationSkipped), with its reason;
-- and every run request gets a row with its outcome (RunAccepted / RunRefused).

ALTER TABLE job_notifications DROP CONSTRAINT job_notifications_state_check;
ALTER TABLE job_notifications ADD CONSTRAINT job_notifications_state_check
    CHECK (state IN ('sent', 'failed', 'skipped'));
-- Why a skipped alert was not sent (error stays for failures only).
ALTER TABLE job_notifications ADD COLUMN reason text;

-- One row per RunRequested: 'pending' when the ledger itself published it (buttons, API),
-- answered (or created, for requests from the CLI or cron) by RunAccepted / RunRefused.
CREATE TABLE run_requests (
    request_id      uuid        PRIMARY KEY,
    job_name        text        NOT NULL,
    trigger         text        NOT NULL,
    dao_count       integer     CHECK (dao_count >= 0),  -- DAOs asked for; NULL: every active DAO
    requested_at    timestamptz,                          -- NULL when only the answer was seen
    state           text        NOT NULL DEFAULT 'pending'
                                CHECK (state IN ('pending', 'accepted', 'refused')),
    job_id          uuid,                                 -- the run it started, once accepted
    reason          text,                                 -- why it was refused
    answered_at     timestamptz,
    answer_event_id uuid,                                 -- the answer kept (ties between answers)
    CHECK ((state = 'pending') = (answered_at IS NULL)),
    CHECK ((state = 'accepted') = (job_id IS NOT NULL)),
    CHECK ((state = 'refused') = (reason IS NOT NULL))
);

-- Run requests the worker refused, with the reason it gave. A redelivered request finds its
-- answer here (an accepted one finds its job by jobs.request_id) and is not answered again,
-- nor differently: a request refused while a run was going is not run once that run ended.
CREATE TABLE refused_requests (
    request_id  uuid        PRIMARY KEY,
    job_name    text        NOT NULL,
    trigger     text        NOT NULL,
    reason      text        NOT NULL,
    refused_at  timestamptz NOT NULL DEFAULT now()
);

-- The transactional outbox: a service writes a message here in the same transaction as the
-- state change it reports; the relay publishes it with a publisher confirm and marks it sent.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    message_id   text        NOT NULL,
    routing_key  text        NOT NULL,
    exchange     text        NOT NULL,
    body         bytea       NOT NULL,
    properties   jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz,
    attempts     integer     NOT NULL DEFAULT 0,
    last_error   text
);
-- The relay's only query: unsent rows in id order.
CREATE INDEX outbox_unsent_idx ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent_at_idx ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- Idempotent consumers: the ids of handled events, written in the same
-- transaction as the handling's effect, so a redelivery has no second effect.
CREATE TABLE processed_events (
    consumer_group TEXT        NOT NULL,
    event_id       UUID        NOT NULL,
    processed_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, event_id)
);

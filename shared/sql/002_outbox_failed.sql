-- Outbox rows Kafka can never take (too big for the broker, a topic name it refuses, another
-- permanent produce error), set aside by the relay so that they do not hold back the rows after
-- them. Kept with the reason for an operator: fix the cause, then put a row back with
--   INSERT INTO outbox (topic, key, event_id, event_type, payload)
--       SELECT topic, key, event_id, event_type, payload FROM outbox_failed WHERE seq = …;
CREATE TABLE IF NOT EXISTS outbox_failed (
    seq         bigint      PRIMARY KEY,   -- its seq in the outbox
    topic       text        NOT NULL,
    key         text,
    event_id    text        NOT NULL,
    event_type  text        NOT NULL,
    payload     bytea       NOT NULL,
    created_at  timestamptz NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now(),
    reason      text        NOT NULL
);

-- Plumbing every service schema has: the transactional outbox and the processed-event record.

-- Events written in the same transaction as the state they describe; the relay sends them to Kafka.
CREATE TABLE IF NOT EXISTS outbox (
    seq         bigserial PRIMARY KEY,
    topic       text        NOT NULL,
    key         text,
    event_id    text        NOT NULL,
    event_type  text        NOT NULL,
    payload     bytea       NOT NULL,  -- the envelope exactly as it goes on the wire
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Wake the relay at commit instead of waiting for its next poll.
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_outbox', '');
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS outbox_inserted ON outbox;
CREATE TRIGGER outbox_inserted AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- The events a consumer has applied, recorded in the transaction of the effect: a replay is harmless.
CREATE TABLE IF NOT EXISTS processed_events (
    consumer     text        NOT NULL,
    event_id     text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

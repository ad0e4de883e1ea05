-- notify's own tables: who to answer for each case, and every reply we send them.
-- Unqualified names: the pool's search_path is this service's schema.

-- The resident to answer, learnt from case.reported. The phone is kept exactly as given (the
-- hotline may need it verbatim); everywhere outside this table it is shown masked.
CREATE TABLE contacts (
    case_id         text PRIMARY KEY,
    case_no         text        NOT NULL,
    name            text,
    phone           text        NOT NULL,
    source_event_id text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One reply to one resident on one channel, and where its delivery stands.
CREATE TABLE deliveries (
    id              uuid PRIMARY KEY,
    case_id         text        NOT NULL,
    case_no         text        NOT NULL,
    kind            text        NOT NULL
        CHECK (kind IN ('acknowledgement', 'progress', 'resolution', 'explanation', 'survey', 'rejection')),
    channel         text        NOT NULL DEFAULT 'sms',
    to_phone        text        NOT NULL,  -- the address actually sent to (normalised mobile number)
    text            text        NOT NULL,
    state           text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed', 'held')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    source_event_id text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    -- One event never yields two deliveries of one kind, even if it is handled twice.
    CONSTRAINT one_delivery_per_event_and_kind UNIQUE (source_event_id, kind)
);

-- A case is acknowledged once, even if two different events asked for it (a re-sent case.accepted
-- with a new id): "a resident never gets the same SMS twice".
CREATE UNIQUE INDEX one_acknowledgement_per_case ON deliveries (case_id) WHERE kind = 'acknowledgement';
-- What the delivery worker polls.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_by_case_no ON deliveries (case_no, created_at);

-- Wake the delivery worker at commit instead of waiting for its next poll (like the outbox).
CREATE OR REPLACE FUNCTION deliveries_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_deliveries', '');
    RETURN NULL;
END $$;

CREATE TRIGGER deliveries_inserted AFTER INSERT ON deliveries FOR EACH STATEMENT EXECUTE FUNCTION deliveries_notify();

-- TODO(survey): survey_answers (case_id, delivery_id, score, comment, answered_at) with the survey flow.

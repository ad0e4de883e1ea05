-- The case read model: one row per case, folded from wangge.cases, and every event as received.

CREATE TABLE IF NOT EXISTS cases (
    case_id             text PRIMARY KEY,
    case_no             text,
    state               text,            -- NULL only while no state-moving event has arrived
    category            text,
    unit_grid           text,
    owner               text,
    owner_name          text,
    priority            text,
    source              text,
    description         text,
    reported_at         timestamptz,
    accepted_at         timestamptz,
    dispatched_at       timestamptz,     -- of the latest dispatch
    due_at              timestamptz,     -- of the latest dispatch
    closed_at           timestamptz,     -- when it reached a final state (closed, rejected, merged)
    warned_at           timestamptz,
    overdue_at          timestamptz,
    escalation_level    text,
    merged_into_case_no text,
    rejection_reason    text,
    events_seen         integer     NOT NULL DEFAULT 0,
    last_event_at       timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
-- Not unique: a producer bug giving two cases one number must not stop the consumer.
CREATE INDEX IF NOT EXISTS cases_by_case_no ON cases (case_no);
CREATE INDEX IF NOT EXISTS cases_by_state_owner ON cases (state, owner);

-- History: every event of a case in arrival order (= Kafka order per case), with what it did.
CREATE TABLE IF NOT EXISTS case_events (
    seq          bigserial PRIMARY KEY,
    event_id     text        NOT NULL UNIQUE,
    case_id      text        NOT NULL,
    type         text        NOT NULL,
    version      integer     NOT NULL,
    occurred_at  timestamptz NOT NULL,
    source       text        NOT NULL,
    data         jsonb       NOT NULL,
    effect       text        NOT NULL CHECK (effect IN ('moved', 'noted', 'refused', 'history')),
    state_after  text,
    note         text,                   -- why a refused event was refused
    recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS case_events_by_case ON case_events (case_id, seq);

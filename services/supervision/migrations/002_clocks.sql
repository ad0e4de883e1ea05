-- Clocks and their deadlines. They live here, not in memory, so they survive restarts, and any
-- number of instances poll them with FOR UPDATE SKIP LOCKED so that each deadline fires once.

CREATE TABLE IF NOT EXISTS clocks (
    case_id          text             NOT NULL,
    kind             text             NOT NULL DEFAULT 'handling',
    case_no          text             NOT NULL,
    owner            text             NOT NULL,
    category         text             NOT NULL,
    limit_value      double precision NOT NULL,
    limit_unit       text             NOT NULL,
    started_at       timestamptz      NOT NULL,
    warn_at          timestamptz      NOT NULL,  -- 75% of the limit on the street's work calendar
    due_at           timestamptz      NOT NULL,
    state            text             NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'stopped')),
    warned_at        timestamptz,
    overdue_at       timestamptz,
    escalation_level text,
    stopped_at       timestamptz,
    stop_reason      text,                       -- the case state that stopped it
    opened_by        text             NOT NULL,  -- the case.dispatched event id
    updated_at       timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (case_id, kind)
);
-- The poller's two questions, each answered from a small partial index.
CREATE INDEX IF NOT EXISTS clocks_warning_pending ON clocks (warn_at) WHERE state = 'running' AND warned_at IS NULL;
CREATE INDEX IF NOT EXISTS clocks_overdue_pending ON clocks (due_at) WHERE state = 'running' AND overdue_at IS NULL;

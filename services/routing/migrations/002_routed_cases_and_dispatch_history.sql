-- Closing the loop: a case can be dispatched more than once (by hand, after rework, after reopening),
-- so `dispatches` becomes a history, and `routed_cases` is routing's own view of each case it sent.

-- One row per dispatch. What keeps "never twice by one event" is now the cause: the event (or the
-- operator's command) that caused a dispatch can cause only one. And a case is dispatched for the
-- first time only once, whatever acceptances are redelivered.
ALTER TABLE dispatches DROP CONSTRAINT dispatches_pkey;
ALTER TABLE dispatches RENAME COLUMN accepted_event_id TO cause_id;
ALTER TABLE dispatches ADD PRIMARY KEY (event_id);
ALTER TABLE dispatches ADD CONSTRAINT dispatches_cause UNIQUE (cause_id);
ALTER TABLE dispatches
    ADD COLUMN occasion       text NOT NULL DEFAULT 'first' CHECK (occasion IN ('first', 'manual', 'rework', 'reopen')),
    ADD COLUMN note           text,                            -- the operator's reason, the check's note, the resident's reason
    ADD COLUMN by_actor       text NOT NULL DEFAULT 'system',  -- operator:<name> for a manual dispatch
    ADD COLUMN previous_owner text;                            -- the holder recalled by this dispatch
CREATE UNIQUE INDEX dispatches_first ON dispatches (case_id) WHERE occasion = 'first';
CREATE INDEX dispatches_case ON dispatches (case_id, dispatched_at);

-- What a later task.assigned needs (the case as accepted), who holds the case now and whether it is
-- open. Kept up to date by routing's own dispatches and by case.returned / case.closed.
CREATE TABLE routed_cases (
    case_id     text PRIMARY KEY,
    case_no     text        NOT NULL UNIQUE,  -- the operators' HTTP path names the case by its number
    category    text        NOT NULL,
    unit_grid   text        NOT NULL,
    description text        NOT NULL,
    location    jsonb,
    address     text,
    media       jsonb       NOT NULL DEFAULT '[]',
    holder      text,                         -- the owner working on it; NULL when returned or closed
    status      text        NOT NULL CHECK (status IN ('open', 'returned', 'closed')),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Cases dispatched before this migration: 001 did not keep their description, place or photos, so a
-- re-dispatch of one of them sends an empty description (the owner still gets its number and grid).
INSERT INTO routed_cases (case_id, case_no, category, unit_grid, description, holder, status)
SELECT case_id, case_no, category, unit_grid, '', owner, 'open' FROM dispatches
ON CONFLICT DO NOTHING;

-- Open311 both ways (issue 19): what happened to each case after intake took it, and the residents' comments.

-- Every public step of a case, as Open311's servicerequestupdates reads it: one row per event on wangge.cases
-- that a resident may see (state changes, replies, public notes, comments). The event id is the update_id;
-- seq orders rows that share a moment and is the paging cursor.
CREATE TABLE IF NOT EXISTS case_updates (
    seq                   bigserial   UNIQUE,
    update_id             text        PRIMARY KEY,
    case_id               uuid        NOT NULL,
    case_no               text        NOT NULL,
    event_type            text        NOT NULL,
    occurred_at           timestamptz NOT NULL,
    status                text        NOT NULL,   -- the Open311 (FixMyStreet) status after this step
    external_status_code  text        NOT NULL,   -- wangge's own state (or state-outcome) after this step
    description           text        NOT NULL,   -- the public note, personal data masked
    media_url             text
);
CREATE INDEX IF NOT EXISTS case_updates_by_time ON case_updates (occurred_at, seq);
CREATE INDEX IF NOT EXISTS case_updates_by_case ON case_updates (case_id, occurred_at);

-- The request's own "updated_datetime" moves with every public step; its detailed state says what
-- Open311 readers are told (a rejected or merged request is closed, but not fixed).
ALTER TABLE reports ADD COLUMN IF NOT EXISTS updated_at timestamptz;
ALTER TABLE reports ADD COLUMN IF NOT EXISTS public_state text;
ALTER TABLE reports ADD COLUMN IF NOT EXISTS public_note text;
CREATE INDEX IF NOT EXISTS reports_by_received ON reports (received_at DESC, case_no);

-- A resident's comment on a case (resident's page, or an Open311 client's POST servicerequestupdates).
-- sender_key is the client's own id of the comment (Open311 update_id, scoped to the client): the same
-- comment posted twice is one comment.
CREATE TABLE IF NOT EXISTS case_comments (
    comment_id   text        PRIMARY KEY,
    sender_key   text        NOT NULL UNIQUE,
    case_id      uuid        NOT NULL REFERENCES reports (case_id),
    case_no      text        NOT NULL,
    channel      text        NOT NULL CHECK (channel IN ('web', 'open311')),
    text         text        NOT NULL,
    media        jsonb       NOT NULL DEFAULT '[]',
    created_at   timestamptz NOT NULL DEFAULT now()
);

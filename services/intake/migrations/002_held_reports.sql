-- Credentials now come from the shared registry (shared/sql/001_credentials.sql, learnt from
-- wangge.credentials): intake's own API clients are gone.
DROP TABLE IF EXISTS api_clients;

-- The command center acts on held reports: classify, locate, reject, merge.
-- state: reported (held), accepted, rejected or merged.
ALTER TABLE reports
    ADD COLUMN IF NOT EXISTS reject_reason text,                                -- rejected: what the reporter is told
    ADD COLUMN IF NOT EXISTS merged_into   uuid REFERENCES reports (case_id),    -- merged: the open case it follows
    ADD COLUMN IF NOT EXISTS acted_by      text,                                -- the operator's last action on it
    ADD COLUMN IF NOT EXISTS acted_at      timestamptz;

-- The command center's queue of held reports.
CREATE INDEX IF NOT EXISTS reports_held ON reports (received_at) WHERE state = 'reported';

-- The street's time rules (work periods, reminder fraction, stage limits, escalation ladder and interval,
-- survey window): the current configuration, seeded from <name>-config.toml at start when empty, edited
-- by PUT /api/v1/admin/street-config; each change kept in the history. `version` goes up by one per
-- change: the poller and the fold compare it per batch and reload the policy when it moved.
CREATE TABLE IF NOT EXISTS street_config (
    id          boolean     PRIMARY KEY DEFAULT true CHECK (id),  -- one row
    version     integer     NOT NULL,
    config      jsonb       NOT NULL,
    source      text        NOT NULL,                             -- the file it was seeded from, or 'admin'
    updated_by  text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS street_config_history (
    seq         bigserial   PRIMARY KEY,
    version     integer     NOT NULL,
    changed_by  text        NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    old_config  jsonb,                                            -- null for the seed
    new_config  jsonb       NOT NULL,
    note        text
);

-- The ladder: after the first escalation at 100%, the case goes one level further up at
-- next_escalation_at while it stays overdue (each level once; null at the top or once stopped).
-- calendar_assumed: the deadline falls in a year neither chinesecalendar nor the override table knows,
-- so it was counted Monday to Friday.
ALTER TABLE clocks
    ADD COLUMN IF NOT EXISTS next_escalation_at timestamptz,
    ADD COLUMN IF NOT EXISTS calendar_assumed   boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS clocks_escalation_pending ON clocks (next_escalation_at)
    WHERE state = 'running' AND next_escalation_at IS NOT NULL;

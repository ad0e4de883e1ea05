-- The closed loop after dispatch: what owners answered, what the command center decided, what
-- residents said; and clocks of more than one stage, which can be suspended.

ALTER TABLE cases
    ADD COLUMN IF NOT EXISTS signed_at        timestamptz,
    ADD COLUMN IF NOT EXISTS resolved_at      timestamptz,   -- resolved or explained by the owner
    ADD COLUMN IF NOT EXISTS result           text,
    ADD COLUMN IF NOT EXISTS result_media     jsonb,
    ADD COLUMN IF NOT EXISTS explanation      text,
    ADD COLUMN IF NOT EXISTS return_reason    text,
    ADD COLUMN IF NOT EXISTS suspend_reason   text,
    ADD COLUMN IF NOT EXISTS extension_until  timestamptz,
    ADD COLUMN IF NOT EXISTS extension_reason text,
    ADD COLUMN IF NOT EXISTS extension_state  text CHECK (extension_state IN ('pending', 'approved', 'denied')),
    ADD COLUMN IF NOT EXISTS check_note       text,
    ADD COLUMN IF NOT EXISTS close_outcome    text,
    ADD COLUMN IF NOT EXISTS closed_on_time   boolean,
    ADD COLUMN IF NOT EXISTS last_verdict     text,
    ADD COLUMN IF NOT EXISTS reopened_count   integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS dispatch_count   integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS rework_count     integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS dispatch_note    text;
CREATE INDEX IF NOT EXISTS cases_by_owner_state ON cases (owner, state);

-- A suspended clock keeps the time that was left, and restarts with it.
ALTER TABLE clocks DROP CONSTRAINT IF EXISTS clocks_state_check;
ALTER TABLE clocks ADD CONSTRAINT clocks_state_check CHECK (state IN ('running', 'stopped', 'suspended'));
ALTER TABLE clocks
    ADD COLUMN IF NOT EXISTS suspended_at   timestamptz,
    ADD COLUMN IF NOT EXISTS due_left_s     double precision,  -- limit time left at suspension
    ADD COLUMN IF NOT EXISTS warn_left_s    double precision;  -- until the reminder, if not sent yet

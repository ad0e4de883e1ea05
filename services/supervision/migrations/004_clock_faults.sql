-- A clock the poller cannot fire (an owner code that cannot be a topic name, a row whose
-- processing fails) is marked faulted with the reason and skipped by later polls, so it does not
-- hold back the others. A new dispatch (open_clock) clears the mark; an operator who fixed the
-- cause may clear it by hand: UPDATE clocks SET faulted_at = NULL, fault = NULL WHERE case_id = …;
ALTER TABLE clocks
    ADD COLUMN IF NOT EXISTS fault      text,
    ADD COLUMN IF NOT EXISTS faulted_at timestamptz;
CREATE INDEX IF NOT EXISTS clocks_faulted ON clocks (faulted_at) WHERE faulted_at IS NOT NULL;

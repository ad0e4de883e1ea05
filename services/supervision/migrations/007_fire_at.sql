-- One column says when a running clock next needs the poller: its reminder, its deadline, or the next rung of
-- the escalation ladder, whichever comes first and has not fired yet (NULL: nothing left to fire). It is
-- computed by PostgreSQL from the row itself (a stored generated column), so no code path can forget it, and
-- one small partial index answers the poller's question — "what has come, oldest first?" — and the next
-- one — "when must I look again?" — from the first few entries, whether 100 or 1,000,000 clocks run.
ALTER TABLE clocks
    ADD COLUMN IF NOT EXISTS fire_at timestamptz GENERATED ALWAYS AS (
        LEAST(CASE WHEN warned_at IS NULL THEN warn_at END,
              CASE WHEN overdue_at IS NULL THEN due_at END,
              CASE WHEN overdue_at IS NOT NULL THEN next_escalation_at END)) STORED;
CREATE INDEX IF NOT EXISTS clocks_fire_pending ON clocks (fire_at)
    WHERE state = 'running' AND faulted_at IS NULL AND fire_at IS NOT NULL;
-- The three indexes it replaces (each answered one part of the old OR, and the ORDER BY needed a sort).
DROP INDEX IF EXISTS clocks_warning_pending;
DROP INDEX IF EXISTS clocks_overdue_pending;
DROP INDEX IF EXISTS clocks_escalation_pending;
-- The gauges' counts (running, overdue now) from an index, not a scan of every clock ever opened.
CREATE INDEX IF NOT EXISTS clocks_running_due ON clocks (due_at) WHERE state = 'running';

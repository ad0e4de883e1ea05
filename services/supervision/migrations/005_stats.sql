-- The street's figures (docs/STATISTICS.md) are counted from case_events with SQL; these indexes keep a
-- period's count to one range scan per event type, and the deadlines that fall in a period findable.

-- Every count of a period: WHERE type = ANY(...) AND occurred_at in [from, to).
CREATE INDEX IF NOT EXISTS case_events_by_type_time ON case_events (type, occurred_at);

-- The report of a case (its coordinator) for grouping by coordinator.
CREATE INDEX IF NOT EXISTS case_events_reports ON case_events (case_id) WHERE type = 'case.reported';

-- The deadline an event sets (case.dispatched, an approved case.extension-decided, case.resumed), as a
-- timestamptz. Every due_at on wangge.cases is ISO 8601 with an offset, which reads the same whatever the
-- session's settings: so the cast is immutable here and may be indexed (a plain text::timestamptz cast is
-- only stable, for inputs without an offset).
CREATE OR REPLACE FUNCTION stats_due(data jsonb) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (data ->> 'due_at')::timestamptz;

-- "Due in the period" (按期办结率's denominator): the cases with a deadline falling in it.
CREATE INDEX IF NOT EXISTS case_events_deadlines ON case_events (stats_due(data))
    WHERE type IN ('case.dispatched', 'case.extension-decided', 'case.resumed');

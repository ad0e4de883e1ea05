-- The street's figures, kept per street day so that a year of a city is summed from 365 days instead of
-- counted from millions of events (docs/STATISTICS.md, "Kept per day"). A day's rows are the figures of that
-- one day, counted by the same SQL as any period (adapters/stats.py), once per grouping; a period's figures
-- are the sum of its kept days plus what is counted live (today, days not kept yet, days marked since),
-- plus overdue_now, which is of the moment and never kept.
CREATE TABLE IF NOT EXISTS stats_days (
    day    date    NOT NULL,
    by     text    NOT NULL,
    key    text,              -- NULL: the cases of no key (not dispatched, not located, not a coordinator's …)
    counts integer[] NOT NULL -- in the order of domain/stats.py COUNTS (overdue_now always 0 here)
);
CREATE INDEX IF NOT EXISTS stats_days_by_day ON stats_days (by, day);

-- The days kept, and how they were counted.
CREATE TABLE IF NOT EXISTS stats_days_kept (
    day         date PRIMARY KEY,
    basis       text NOT NULL,   -- a digest of how the day was counted (the SQL, the work calendar of the
                                 -- day and its sign-off window, the grids' communities): another is counted again
    counted_at  timestamptz NOT NULL DEFAULT now()
);

-- A day whose figures may have changed since it was kept: every event folded for a case marks each past day
-- on which that case has an event or a deadline (its figures are dated by those days, and keyed by the case's
-- row, which the event may have changed). Append-only, so marking never waits on a lock; the refresher
-- deletes exactly the marks it saw, under one snapshot, so a mark committed meanwhile survives.
CREATE TABLE IF NOT EXISTS stats_marks (
    id  bigserial PRIMARY KEY,
    day date NOT NULL
);
CREATE INDEX IF NOT EXISTS stats_marks_by_day ON stats_marks (day);

-- Each survey counts once, by its final answer: "is there a later answer?" from an index.
CREATE INDEX IF NOT EXISTS case_events_surveys ON case_events ((data->>'survey_id'), occurred_at, seq)
    WHERE type = 'case.survey-answered';

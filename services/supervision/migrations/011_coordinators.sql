-- The coordinator's screen (/grid/): who reported a case, with which photos and where, and whether it was
-- fixed on the spot (自行处置). Learnt from case.reported / case.accepted / case.closed (read_model.py).
ALTER TABLE cases
    ADD COLUMN IF NOT EXISTS reported_by  text,      -- coordinator.worker_id of case.reported (null: not a coordinator's)
    ADD COLUMN IF NOT EXISTS report_media jsonb,     -- the report's photos (URLs)
    ADD COLUMN IF NOT EXISTS address      text,      -- masked as on wangge.cases
    ADD COLUMN IF NOT EXISTS location     jsonb,     -- {"lon", "lat"}
    ADD COLUMN IF NOT EXISTS on_the_spot  boolean NOT NULL DEFAULT false;

-- Cases folded before this migration: the same facts from their history.
UPDATE cases c SET reported_by = e.data->'coordinator'->>'worker_id', report_media = e.data->'media',
                   address = e.data->>'address',
                   location = CASE WHEN jsonb_typeof(e.data->'location') = 'object' THEN e.data->'location' END
FROM case_events e
WHERE e.case_id = c.case_id AND e.type = 'case.reported' AND e.effect = 'moved' AND c.reported_by IS NULL;

-- GET /api/v1/coordinator/reports: one coordinator's reports, newest first, read in pages by keyset.
CREATE INDEX IF NOT EXISTS cases_by_reporter ON cases (reported_by, reported_at DESC, case_id DESC)
    WHERE reported_by IS NOT NULL;
-- GET /api/v1/coordinator/checks: the cases of some unit grids that wait for the on-site check.
CREATE INDEX IF NOT EXISTS cases_awaiting_check ON cases (unit_grid, resolved_at)
    WHERE state IN ('resolved', 'explained');

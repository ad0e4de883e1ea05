-- Claims (processed_events) are pruned once old (shared/claims.py): found by their age. A BRIN index, not a btree:
-- claims are appended in time order, so a few block ranges answer "older than", and a claim insert (the hot path:
-- one per event) pays almost nothing to keep it.
CREATE INDEX IF NOT EXISTS processed_events_at ON processed_events USING brin (processed_at);

-- Which cases carry a photo (GET /media/<id>: shown to who may see such a case). The photos' URLs are in the
-- events themselves — a report's and its acceptance's `media`, a progress note's, a resolution's, a check's,
-- wherever an event puts a `media` list — so one expression index over every `media` list of every event
-- answers it, whatever event types carry photos now or later, without a table of its own to keep in step.
CREATE INDEX IF NOT EXISTS case_events_media
    ON case_events USING gin (jsonb_path_query_array(data, 'lax $.**.media[*]') jsonb_path_ops);

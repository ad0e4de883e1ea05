-- Issue 19, the resident's side.

-- 1. Who may comment on a case from the resident page (/my/): the opaque resident ids (shared/residents.py, an HMAC
--    under the street's resident key) of the mobile and the e-mail the report gave, whatever way it came in (the
--    hotline, a terminal, Open311, the page). A resident whose one-time code proved that phone or address carries
--    the same id as their session's name, so intake checks it without holding the phone or the address. Cleared when
--    notify erases the case's personal data (case.personal-data-erased). Cases reported before this migration have
--    none: intake kept only the masked phone (migration 003), so only a case made from the page itself (reports.client)
--    is commentable there.
ALTER TABLE reports ADD COLUMN IF NOT EXISTS resident_keys text[] NOT NULL DEFAULT '{}';

-- 2. Where intake's reader of wangge.replies starts telling replies as Open311 updates. Its consumer group is new on
--    a deployment that ran before it (it reads the topic from the start, a year of replies): replies issued before
--    this migration are skipped, not recorded as updates dated at each case's latest step (they would reach every
--    client that fetches the last hours as news). NULL: no horizon — the reader ran already (it recorded replies
--    before this migration), so whatever it has not read yet is still told.
CREATE TABLE IF NOT EXISTS open311_reply_horizon (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    since    timestamptz
);
INSERT INTO open311_reply_horizon (since)
SELECT CASE WHEN EXISTS (SELECT 1 FROM case_updates WHERE event_type = 'reply.issued') THEN NULL ELSE now() END
ON CONFLICT DO NOTHING;

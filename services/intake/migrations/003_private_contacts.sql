-- Personal data where DESIGN puts it (DESIGN "Personal data").
--
-- 1. The resident's name and phone go to notify alone (contact.recorded on wangge.contacts); intake
--    keeps only the masked form it also publishes on wangge.cases (李**, 139****1001). Notify holds
--    the contact and erases it after the survey window: no clear copy is left behind here to outlive
--    that erasure. Rows stored before this migration are masked the same way (digits: first three
--    and last four of a mobile, last four otherwise).
UPDATE reports
   SET reporter = jsonb_build_object(
           'name', CASE WHEN coalesce(btrim(reporter ->> 'name'), '') = '' THEN '(未留名)'
                        WHEN position('*' IN reporter ->> 'name') > 0 OR reporter ->> 'name' = '(未留名)'
                            THEN reporter ->> 'name'
                        WHEN length(btrim(reporter ->> 'name')) = 1 THEN '*'
                        ELSE left(btrim(reporter ->> 'name'), 1)
                             || repeat('*', least(length(btrim(reporter ->> 'name')) - 1, 3)) END,
           'phone', CASE WHEN coalesce(btrim(reporter ->> 'phone'), '') = '' THEN NULL
                         WHEN position('*' IN reporter ->> 'phone') > 0 THEN reporter ->> 'phone'
                         WHEN regexp_replace(reporter ->> 'phone', '^\s*(\+|00)?86[ -]?(?=1)|\D', '', 'g') ~ '^1[3-9]\d{9}$'
                             THEN left(regexp_replace(reporter ->> 'phone', '^\s*(\+|00)?86[ -]?(?=1)|\D', '', 'g'), 3)
                                  || '****' || right(regexp_replace(reporter ->> 'phone', '\D', '', 'g'), 4)
                         ELSE '****' || right(regexp_replace(reporter ->> 'phone', '\D', '', 'g'), 4) END)
 WHERE reporter IS NOT NULL AND jsonb_typeof(reporter) = 'object';

-- 2. The idempotency key is scoped to the sender: (source, external_id) as the sender that made the
--    case claimed it — the API client over HTTP (its credential's actor), the envelope's `source`
--    on Kafka. A report re-sent by the same sender is still one case; another client posting the
--    same external_id gets a case of its own and never sees the first sender's (it used to get that
--    case back: a leak). external_ids are each source's own numbering, so two terminals may well
--    use the same one: refusing the second with 409 would lose a real report.
ALTER TABLE reports DROP CONSTRAINT IF EXISTS reports_source_external_id_key;
CREATE UNIQUE INDEX IF NOT EXISTS reports_once_per_sender
    ON reports (source, received_via, coalesce(client, ''), external_id);
COMMENT ON COLUMN reports.client IS
    'who sent it: the API client (credential actor) over HTTP, the envelope source on Kafka; part of the idempotency key';

-- Issue 18, items 2 and 6.
--
-- 1. An Open311 comment is de-duplicated within its sender's credential, never within the credential's name (names
--    are not unique: two API clients named alike had one's comment taken as the other's duplicate and dropped).
--    Its key was 'open311:<role>:<name>:<case_no>:<update_id>' (before that 'open311:<role>:<name>:<update_id>');
--    it is now 'open311:<sender scope>:<case_no>:<update_id>' (shared/auth.py Client.sender_scope). Keys stored
--    before are rewritten here, as intake 010 did for reports, wherever the old scope names exactly one credential
--    and that credential is scoped by its id ('credential:c…', derived from the token's hash as
--    shared/auth.credential_id does; issued by the admin key, or learnt before issuers were kept): a client retrying
--    an old comment after the upgrade gets it back, not a second one. Both old forms become the new one (the row's
--    case_no is known). A person's session keeps '<role>:<name>' (their account's, unique there): unchanged. A name
--    several credentials share: unchanged, so none of them is handed the other's comment (a retry of such a comment
--    is recorded again rather than dropped).
WITH unambiguous AS (
    SELECT 'open311:' || role || ':' || name || ':' AS old_prefix,
           'open311:credential:c' || left(encode(sha256(convert_to('wangge-credential-id:' || min(token_sha256),
                                                                    'UTF8')), 'hex'), 24) || ':' AS new_prefix
      FROM credentials
     WHERE role NOT IN ('resident', 'owner')
     GROUP BY role, name
    HAVING count(*) = 1 AND bool_and(issuer IS NULL OR issuer = 'admin')
)
UPDATE case_comments c
   SET sender_key = u.new_prefix
                    || CASE WHEN starts_with(substr(c.sender_key, length(u.old_prefix) + 1), c.case_no || ':')
                            THEN substr(c.sender_key, length(u.old_prefix) + 1)
                            ELSE c.case_no || ':' || substr(c.sender_key, length(u.old_prefix) + 1) END
  FROM unambiguous u
 WHERE c.channel = 'open311' AND starts_with(c.sender_key, u.old_prefix);

-- 2. The anonymous Open311 list (GET /open311/v2/requests.json: newest first, 1000 a page, only reports the command
--    center decided on) read from an index in its own order. reports_by_received (006) is (received_at DESC,
--    case_no ASC): the list's tie-break, case_no DESC, needed a sort over every row of the window. These match the
--    query (services/intake/adapters/repository.py PUBLIC_REQUESTS) exactly, the second for a service_code filter.
CREATE INDEX IF NOT EXISTS reports_public_by_received
    ON reports (received_at DESC, case_no DESC) WHERE state <> 'reported';
CREATE INDEX IF NOT EXISTS reports_public_by_category
    ON reports (category, received_at DESC, case_no DESC) WHERE state <> 'reported';

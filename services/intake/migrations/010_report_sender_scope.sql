-- Issue 18: a report sent over HTTP is de-duplicated within its credential, never within the credential's name
-- (names are not unique: shared/auth.py Client.sender_scope). Reports stored before this migration carry the old
-- scope, '<role>:<name>'; rewritten here to the new one wherever it is unambiguous, so a client re-sending an old
-- report after the upgrade still finds its case:
-- * exactly one credential this service knows has that role and name: its scope, 'credential:<id>' (the id derived
--   from the token's hash as shared/auth.credential_id does). Rows learnt before shared/sql 006 have no issuer and
--   are scoped by their id at run time too, so the two agree.
-- * a resident ('resident:<id>'): unchanged, a resident's scope is their id (how /my/ finds their cases).
-- * a name several credentials share: unchanged. Which of them sent it is unknowable, and no new scope has that
--   form for an admin-issued credential, so none of them is handed that case back; a re-send of such a report after
--   the upgrade makes a new case (a possible duplicate rather than another client's case).
-- Reports from Kafka ('key:<id>', 'unsigned:<source>') are already scoped to their verified signer.
WITH unambiguous AS (
    SELECT role || ':' || name AS old_scope,
           'credential:c' || left(encode(sha256(convert_to('wangge-credential-id:' || min(token_sha256), 'UTF8')),
                                         'hex'), 24) AS new_scope
      FROM credentials
     WHERE role <> 'resident' AND role <> 'owner'
     GROUP BY role, name
    HAVING count(*) = 1
)
UPDATE reports r SET client = u.new_scope
  FROM unambiguous u
 WHERE r.received_via = 'http' AND r.client = u.old_scope;

-- Residents who prove an e-mail address instead of a phone (issue 19: one who reported through Open311 with only an
-- e-mail signs in on /my/ with a code sent by e-mail). A code, and the session it opens, stands for exactly one of
-- the two; an address is kept trimmed and in lower case, as look-ups compare it. The code is stored as an HMAC keyed
-- to the address, like a phone's (shared/residents.py code_hash), never in clear.
ALTER TABLE resident_codes ADD COLUMN email_norm text;
ALTER TABLE resident_codes ALTER COLUMN phone_norm DROP NOT NULL;
ALTER TABLE resident_codes ADD CONSTRAINT resident_codes_one_address CHECK ((phone_norm IS NULL) <> (email_norm IS NULL));
CREATE INDEX resident_codes_by_email ON resident_codes (email_norm, created_at DESC) WHERE email_norm IS NOT NULL;

ALTER TABLE resident_sessions ADD COLUMN email_norm text;
ALTER TABLE resident_sessions ALTER COLUMN phone_norm DROP NOT NULL;
ALTER TABLE resident_sessions ADD CONSTRAINT resident_sessions_one_address
    CHECK ((phone_norm IS NULL) <> (email_norm IS NULL));

-- A resident's own cases by the e-mail their report gave (contacts.email as given: compared in lower case).
CREATE INDEX contacts_by_email ON contacts (lower(btrim(email))) WHERE email IS NOT NULL;

-- A follower's e-mail (a merged duplicate's reporter who gave no mobile is told the followed case's replies by
-- e-mail, and finds them on /my/), erased with the follower's row.
ALTER TABLE followers ADD COLUMN email text;

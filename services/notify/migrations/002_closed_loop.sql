-- The closed loop: every reply kind to the reporter and to residents who follow the case (merged
-- duplicates), deliveries that outlive outages (lease, expiry, uncertain sends, operator resends),
-- a resident-facing status per case, surveys and the answers, and a record of failed look-ups.

-- A normalised phone (spaces, dashes, +86 removed) is what residents' look-ups compare against.
ALTER TABLE contacts ADD COLUMN phone_norm text;
UPDATE contacts SET phone_norm = regexp_replace(regexp_replace(phone, '[\s\-()（）]', '', 'g'), '^(\+86|0086|86)(?=1\d{10}$)', '');
ALTER TABLE contacts ALTER COLUMN phone_norm SET NOT NULL;
CREATE INDEX contacts_by_case_no ON contacts (case_no);
CREATE INDEX contacts_by_phone ON contacts (phone_norm);

-- Residents whose own report was merged into another case: they hear every later step of it.
CREATE TABLE followers (
    case_id          text        NOT NULL,  -- the followed (open) case
    follower_case_id text        NOT NULL,  -- the duplicate the resident reported
    follower_case_no text        NOT NULL,
    phone            text        NOT NULL,
    phone_norm       text        NOT NULL,
    source_event_id  text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (case_id, follower_case_id)
);
CREATE INDEX followers_by_phone ON followers (phone_norm);

-- What a resident sees of their case: its state, folded from the case events notify consumes.
CREATE TABLE case_status (
    case_id          text PRIMARY KEY,
    case_no          text        NOT NULL,
    state            text        NOT NULL,
    followed_case_id text,  -- set when the case was merged into another
    followed_case_no text,
    event_id         text        NOT NULL,
    changed_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_status_by_case_no ON case_status (case_no);
INSERT INTO case_status (case_id, case_no, state, event_id, changed_at)
SELECT c.case_id, c.case_no,
       CASE WHEN EXISTS (SELECT 1 FROM deliveries d WHERE d.case_id = c.case_id AND d.kind = 'acknowledgement')
            THEN 'accepted' ELSE 'reported' END,
       c.source_event_id, c.updated_at
  FROM contacts c;

-- Deliveries: one per (case, kind, occasion, recipient); a lease while a worker sends; useful
-- until expires_at; an operator's resend is a new delivery pointing at the failed one.
ALTER TABLE deliveries DROP CONSTRAINT one_delivery_per_event_and_kind;
DROP INDEX one_acknowledgement_per_case;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_state_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_state_check
    CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'held'));
ALTER TABLE deliveries
    ADD COLUMN template        text,
    ADD COLUMN expires_at      timestamptz,
    ADD COLUMN lease_until     timestamptz,
    ADD COLUMN lease_token     uuid,
    -- Set when a worker's lease ran out mid-send: the gateway may have the message already; it is
    -- sent again under the same idempotency key (the delivery id) and stays marked for operators.
    ADD COLUMN uncertain_since timestamptz,
    ADD COLUMN resend_of       uuid REFERENCES deliveries (id),
    ADD COLUMN requested_by    text;
UPDATE deliveries SET expires_at = created_at + interval '24 hours', template = kind;
ALTER TABLE deliveries ALTER COLUMN expires_at SET NOT NULL, ALTER COLUMN template SET NOT NULL;
CREATE UNIQUE INDEX one_delivery_per_occasion_and_recipient
    ON deliveries (case_id, kind, source_event_id, to_phone) WHERE resend_of IS NULL;
CREATE UNIQUE INDEX one_acknowledgement_per_case
    ON deliveries (case_id) WHERE kind = 'acknowledgement' AND resend_of IS NULL;
-- A failed delivery is resent once; to try again, resend the resend.
CREATE UNIQUE INDEX one_resend_per_delivery ON deliveries (resend_of) WHERE resend_of IS NOT NULL;
CREATE INDEX deliveries_leased ON deliveries (lease_until) WHERE state = 'sending';
CREATE INDEX deliveries_uncertain ON deliveries (uncertain_since) WHERE uncertain_since IS NOT NULL;

-- One survey per closing of a case (a reopened case closed again is surveyed again); the first
-- answer of the reporter or a follower within the window counts.
CREATE TABLE surveys (
    survey_id       uuid PRIMARY KEY,
    case_id         text        NOT NULL,
    case_no         text        NOT NULL,
    source_event_id text        NOT NULL UNIQUE,
    opened_at       timestamptz NOT NULL,
    closes_at       timestamptz NOT NULL,
    answered_at     timestamptz,
    verdict         text CHECK (verdict IN ('satisfied', 'basically_satisfied', 'unsatisfied')),
    comment         text,  -- phone numbers masked before storing
    channel         text CHECK (channel IN ('web', 'sms')),
    CHECK ((answered_at IS NULL) = (verdict IS NULL))
);
CREATE INDEX surveys_by_case ON surveys (case_id, opened_at DESC);

-- Failed resident look-ups (wrong phone, unknown case), to slow down guessing. In PostgreSQL so
-- that the limit holds across every notify instance; old rows are pruned as new ones arrive.
CREATE TABLE lookup_failures (
    id        bigserial PRIMARY KEY,
    case_no   text        NOT NULL,
    client_ip text        NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lookup_failures_by_case_no ON lookup_failures (case_no, failed_at);
CREATE INDEX lookup_failures_by_ip ON lookup_failures (client_ip, failed_at);

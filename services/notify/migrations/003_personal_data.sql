-- Personal data where DESIGN puts it: contacts arrive on their own topic (wangge.contacts), in no
-- order with the case events; they are erased a configured time after the survey window closes.

-- Cases whose report gave a phone (case.reported carries it masked): their contact.recorded is on
-- its way. Until it arrives, replies for the case wait as deliveries in state awaiting_contact.
CREATE TABLE expected_contacts (
    case_id         text PRIMARY KEY,
    case_no         text        NOT NULL,
    source_event_id text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- awaiting_contact: planned (text rendered) while the resident's contact had not arrived yet; to_phone
-- is '' until it does, then the reply goes pending (or held, for a landline) at once.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_state_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_state_check
    CHECK (state IN ('awaiting_contact', 'pending', 'sending', 'sent', 'failed', 'held'));
CREATE INDEX deliveries_awaiting_contact ON deliveries (case_id) WHERE state = 'awaiting_contact';

-- When a case's residents' data falls due for erasure: erase_after_days after window_closes_at (the
-- end of the latest survey window, or the rejection). NULL while the case is open again (reopened).
CREATE TABLE erasure_due (
    case_id          text PRIMARY KEY,
    case_no          text        NOT NULL,
    window_closes_at timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX erasure_due_by_time ON erasure_due (window_closes_at) WHERE window_closes_at IS NOT NULL;

-- The record of every erasure (DESIGN: "the erasure is itself recorded"); no personal data in it.
CREATE TABLE erasures (
    id        bigserial PRIMARY KEY,
    case_id   text        NOT NULL,
    case_no   text        NOT NULL,
    erased_at timestamptz NOT NULL DEFAULT now(),
    what      text[]      NOT NULL,  -- name, phone, follower_phones, delivery_addresses
    event_id  text        NOT NULL   -- the case.personal-data-erased announcing it
);
CREATE INDEX erasures_by_case ON erasures (case_id);

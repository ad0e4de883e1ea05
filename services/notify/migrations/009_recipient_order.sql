-- A recipient's replies of one case go out one at a time, in order (repository.claim_due): a due reply waits while
-- an earlier one to the same address is still pending or being sent. This index finds those few rows per claimed
-- one (only unsettled rows are in it).
CREATE INDEX deliveries_unsettled_by_recipient ON deliveries (case_id, to_phone) WHERE state IN ('pending', 'sending');

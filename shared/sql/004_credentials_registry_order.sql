-- Credential events are ordered by the registry, not by the publisher's clock: the offset of the event on
-- wangge.credentials (one partition, so one order for every key) that this row last took. NULL: learnt before
-- this column existed; any event from the registry replaces it.
ALTER TABLE credentials ADD COLUMN IF NOT EXISTS registry_offset bigint;

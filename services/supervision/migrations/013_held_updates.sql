-- Owners' updates (wangge.task-updates) that overtook the case log: the owner read its task on its own topic and
-- answered before supervision folded the case's dispatch from wangge.cases (another topic, another consumer group).
-- Held here, written in the transaction that claimed the update; applied in the transaction that folds the case's
-- dispatch, in arrival order (seq); refused with the reason it would have had once held longer than
-- WANGGE_HELD_UPDATE_SECONDS (handlers.OwnerUpdates).
CREATE TABLE IF NOT EXISTS held_updates (
    seq        bigserial   PRIMARY KEY,
    case_id    text        NOT NULL,
    update_id  text        NOT NULL UNIQUE,   -- the envelope's id, claimed by supervision:task-updates
    owner      text        NOT NULL,
    envelope   bytea       NOT NULL,          -- the envelope as it came (upcast on release like any other)
    held_at    timestamptz NOT NULL           -- on supervision's clock (handed in, so tests can move it)
);
CREATE INDEX IF NOT EXISTS held_updates_case ON held_updates (case_id, seq);
CREATE INDEX IF NOT EXISTS held_updates_held_at ON held_updates (held_at);

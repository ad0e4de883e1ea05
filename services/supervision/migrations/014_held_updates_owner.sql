-- An owner's held updates are counted before another is held (WANGGE_HELD_UPDATES_PER_OWNER).
CREATE INDEX IF NOT EXISTS held_updates_owner ON held_updates (owner);

-- Credentials this service accepts, learnt from wangge.credentials (the token's hash, never the token).

CREATE TABLE IF NOT EXISTS credentials (
    token_sha256 text PRIMARY KEY,
    name         text        NOT NULL,
    role         text        NOT NULL,
    owner_code   text,
    worker_id    text,
    device_id    text,
    expires_at   timestamptz,
    demo         boolean     NOT NULL DEFAULT false,
    revoked_at   timestamptz,
    revoke_reason text,
    event_at     timestamptz NOT NULL,  -- the registry event applied last: an older replay changes nothing
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Residents on the web (/my/): one-time codes that prove a phone, the guessing limits, and the sessions opened.
-- The codes are stored as an HMAC keyed to the phone (shared/residents.py code_hash), never in clear.

CREATE TABLE resident_codes (
    id          bigserial PRIMARY KEY,
    phone_norm  text        NOT NULL,
    code_hash   text        NOT NULL,
    client_ip   text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    wrong_tries integer     NOT NULL DEFAULT 0,
    used_at     timestamptz
);
CREATE INDEX resident_codes_by_phone ON resident_codes (phone_norm, created_at DESC);
CREATE INDEX resident_codes_by_ip ON resident_codes (client_ip, created_at);

-- Wrong codes typed, per client address (a guesser spreading over many phones is still slowed).
CREATE TABLE resident_code_failures (
    id        bigserial PRIMARY KEY,
    client_ip text        NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX resident_code_failures_by_ip ON resident_code_failures (client_ip, failed_at);

-- A proven phone's sessions (by the hash of the cookie's value): which phone a session stands for stays here,
-- in notify; the registry knows only the opaque resident id.
CREATE TABLE resident_sessions (
    token_sha256 text PRIMARY KEY,
    resident_id  text        NOT NULL,
    phone_norm   text        NOT NULL,
    expires_at   timestamptz NOT NULL,
    ended_at     timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX resident_sessions_by_resident ON resident_sessions (resident_id);

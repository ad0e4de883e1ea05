-- People who sign in (operators, coordinators 网格员, owners' staff, administrators) and their sessions.
-- A session's id is a random cookie value; only its SHA-256 is stored here and published on the credential
-- registry (credential.issued / credential.revoked), which is how every service checks it. Passwords: argon2id
-- hashes (argon2-cffi's encoded form, parameters included), never the password.

CREATE TABLE IF NOT EXISTS accounts (
    username        text PRIMARY KEY CHECK (username ~ '^[a-z0-9][a-z0-9._-]{0,49}$'),
    display_name    text        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('operator', 'coordinator', 'owner', 'admin')),
    role            text        NOT NULL CHECK (role IN ('operator', 'terminal', 'owner', 'admin')),
    owner_code      text,
    worker_id       text,
    password_hash   text        NOT NULL,
    demo            boolean     NOT NULL DEFAULT false,   -- ./dev up's demo people: the production profile refuses them
    disabled_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (kind <> 'owner' OR owner_code IS NOT NULL),
    CHECK (kind <> 'coordinator' OR worker_id IS NOT NULL)
);

CREATE TABLE IF NOT EXISTS sessions (
    session_sha256 text PRIMARY KEY,
    username       text        NOT NULL REFERENCES accounts (username),
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    ended_at       timestamptz,
    end_reason     text,
    client_address text
);

-- Disabling an account or changing its password ends its open sessions: found by this index.
CREATE INDEX IF NOT EXISTS sessions_open_by_account ON sessions (username) WHERE ended_at IS NULL;
-- Sessions long expired are forgotten after a while (people.py SESSION_RECORD_KEPT): found by this index.
CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions (expires_at);

-- Guessing, slowed and locked: the failed attempts per username (known or not: an unknown one locks the same way,
-- so the answers do not tell which usernames exist) and per client address, and until when each is locked.
-- An attempt is counted before its password is checked, so a burst of parallel guesses cannot outrun the lock.
CREATE TABLE IF NOT EXISTS sign_in_guards (
    scope           text        NOT NULL CHECK (scope IN ('username', 'address')),
    key             text        NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,   -- failed (or in flight) since the window began
    window_started  timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,
    PRIMARY KEY (scope, key)
);

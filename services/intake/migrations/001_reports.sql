-- Intake owns cases as reported, their numbering, and the API clients that may report.

CREATE TABLE IF NOT EXISTS reports (
    case_id         uuid PRIMARY KEY,
    case_no         text        NOT NULL UNIQUE,
    source          text        NOT NULL,
    external_id     text        NOT NULL,
    category        text,
    description     text        NOT NULL,
    lon             double precision,
    lat             double precision,
    address         text,
    unit_grid       text,
    reporter        jsonb,
    coordinator     jsonb,
    media           jsonb       NOT NULL DEFAULT '[]',
    observed_at     timestamptz NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    received_via    text        NOT NULL,          -- http or kafka
    client          text,                          -- the API client or the Kafka event id it came with
    state           text        NOT NULL,          -- reported (awaiting classification/location) or accepted
    hold_reason     text,                          -- why a reported case was not accepted yet
    -- The same report sent twice (a terminal retrying, the hotline bridge replaying) is one case.
    UNIQUE (source, external_id)
);

-- Case numbers are per day in the street's zone: 20261127-0001, -0002, …
CREATE TABLE IF NOT EXISTS case_numbers (
    day   date    PRIMARY KEY,
    last  integer NOT NULL
);

CREATE TABLE IF NOT EXISTS api_clients (
    id            bigserial PRIMARY KEY,
    name          text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('terminal', 'hotline', 'owner', 'operator', 'admin')),
    token_sha256  text        NOT NULL UNIQUE,   -- only the hash is kept: a leaked table leaks no token
    worker_id     text,
    device_id     text,
    owner_code    text,
    active        boolean     NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);

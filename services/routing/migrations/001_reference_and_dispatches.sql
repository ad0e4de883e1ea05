-- Routing's reference data (one street, replaced as a whole by `load-street`) and its dispatches.

-- The street whose data is loaded; load_id changes on every load so caches know to rebuild.
CREATE TABLE street (
    code       text        NOT NULL,
    name       text        NOT NULL,
    source_dir text        NOT NULL,
    load_id    text        NOT NULL,
    loaded_at  timestamptz NOT NULL DEFAULT now()
);

-- The three grid levels. `community` is the community grid each grid lies in (itself for a
-- community), kept here so dispatching to a community is one lookup.
CREATE TABLE grids (
    code       text PRIMARY KEY,
    name       text NOT NULL,
    level      text NOT NULL CHECK (level IN ('community', 'foundation', 'unit')),
    parent     text,
    community  text NOT NULL,
    households integer,
    geometry   text NOT NULL  -- GeoJSON geometry (WGS84); no PostGIS needed at this size
);
CREATE INDEX grids_level ON grids (level);

CREATE TABLE addresses (
    address   text PRIMARY KEY,
    estate    text NOT NULL,
    building  text NOT NULL,
    lon       double precision NOT NULL,
    lat       double precision NOT NULL,
    unit_grid text NOT NULL REFERENCES grids (code)
);

-- Owners that are not communities: the command center, departments, outside utilities.
CREATE TABLE departments (
    code text PRIMARY KEY,
    name text NOT NULL,
    kind text NOT NULL,
    note text NOT NULL DEFAULT ''
);

CREATE TABLE categories (
    code       text PRIMARY KEY,
    grp        text NOT NULL,
    name       text NOT NULL,
    owner      text NOT NULL,  -- a department code, or 'community' (the community of the case's unit grid)
    time_limit double precision NOT NULL CHECK (time_limit > 0),
    limit_unit text NOT NULL CHECK (limit_unit IN ('work_hours', 'work_days', 'hours')),
    urgency    text NOT NULL CHECK (urgency IN ('low', 'normal', 'high', 'urgent')),
    note       text NOT NULL DEFAULT ''
);

CREATE TABLE people (
    person_id text PRIMARY KEY,
    name      text NOT NULL,
    role      text NOT NULL,
    grid_code text NOT NULL REFERENCES grids (code),
    phone     text NOT NULL,
    device_id text
);
CREATE INDEX people_grid ON people (grid_code);

-- The street's calendar overrides: days the national holiday source does not know yet.
CREATE TABLE calendar_days (
    day     date PRIMARY KEY,
    workday boolean NOT NULL
);

-- One dispatch per case: the primary key is what makes a second case.accepted harmless.
-- History, not reference data: a street reload leaves it alone.
CREATE TABLE dispatches (
    case_id           text PRIMARY KEY,
    case_no           text        NOT NULL,
    owner             text        NOT NULL,
    owner_name        text,
    category          text        NOT NULL,
    unit_grid         text        NOT NULL,
    priority          text        NOT NULL,
    limit_value       double precision NOT NULL,
    limit_unit        text        NOT NULL,
    dispatched_at     timestamptz NOT NULL,
    due_at            timestamptz NOT NULL,
    manual_reason     text,                 -- why it went to the command center instead of a rule's owner
    accepted_event_id text        NOT NULL, -- the case.accepted that caused it
    event_id          text        NOT NULL  -- the case.dispatched it emitted
);
CREATE INDEX dispatches_owner ON dispatches (owner, due_at);

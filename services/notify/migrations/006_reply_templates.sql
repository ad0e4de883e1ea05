-- The reply templates as the street edited them (PUT /api/v1/admin/templates/{name}); a template without a row
-- here is the default file in services/notify/templates. Every change is kept with the text it replaced.
CREATE TABLE reply_templates (
    name       text PRIMARY KEY,
    source     text        NOT NULL,
    version    integer     NOT NULL,
    updated_by text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reply_template_history (
    id              bigserial PRIMARY KEY,  -- its maximum tells every notify instance the templates changed
    name            text        NOT NULL,
    version         integer     NOT NULL,
    previous_source text        NOT NULL,  -- the text in force before (the default file's for a first change)
    source          text        NOT NULL,
    changed_by      text        NOT NULL,
    changed_at      timestamptz NOT NULL DEFAULT now(),
    note            text,
    UNIQUE (name, version)
);

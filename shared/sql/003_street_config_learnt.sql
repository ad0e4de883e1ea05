-- The street's time rules in force as this service learnt them from wangge.street-config (routing, notify:
-- shared/street_rules.py). One row; a higher version replaces it. Supervision owns the configuration in its
-- own street_config table and does not use this one.

CREATE TABLE IF NOT EXISTS street_config_learnt (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    version    integer     NOT NULL,
    config     jsonb       NOT NULL,
    changed_by text        NOT NULL,
    learnt_at  timestamptz NOT NULL DEFAULT now()
);

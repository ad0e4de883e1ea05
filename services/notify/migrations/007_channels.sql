-- Replies on the resident's channel: an e-mail address beside the phone (erased with it), how each case came in
-- (the channel is chosen by it: services/notify/domain/replies.py choose_route), and the integrators' signed
-- webhooks (configured by the street's admin; a delivery names its endpoint by id, never by URL).
ALTER TABLE contacts ADD COLUMN email text;

CREATE TABLE case_sources (
    case_id    text PRIMARY KEY,
    source     text        NOT NULL,  -- case.reported's source: terminal, hotline, web, camera
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_endpoints (
    id         uuid PRIMARY KEY,
    name       text        NOT NULL UNIQUE,
    url        text        NOT NULL,
    secret     text        NOT NULL,  -- the HMAC-SHA256 key; shown once, when the endpoint is created
    sources    text[]      NOT NULL,  -- the report sources whose replies it receives (empty: every case)
    enabled    boolean     NOT NULL DEFAULT true,
    created_by text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- An integrator's copy of the acknowledgement beside the resident's own: one per case and endpoint.
DROP INDEX one_acknowledgement_per_case;
CREATE UNIQUE INDEX one_acknowledgement_per_case
    ON deliveries (case_id) WHERE kind = 'acknowledgement' AND resend_of IS NULL AND channel <> 'webhook';
CREATE UNIQUE INDEX one_acknowledgement_per_case_and_webhook
    ON deliveries (case_id, to_phone) WHERE kind = 'acknowledgement' AND resend_of IS NULL AND channel = 'webhook';

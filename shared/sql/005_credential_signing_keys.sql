-- A machine credential's own Ed25519 key (shared/signing.py): an owner's system, a terminal gateway or the hotline
-- bridge signs what it publishes on Kafka with the private key, which never travels; the registry carries only the
-- public key and its id, so whoever reads the registry (or this table) can check a signature but never make one.
ALTER TABLE credentials ADD COLUMN IF NOT EXISTS signing_key_id text;
ALTER TABLE credentials ADD COLUMN IF NOT EXISTS signing_public_key text;
CREATE INDEX IF NOT EXISTS credentials_signing_key_id ON credentials (signing_key_id) WHERE signing_key_id IS NOT NULL;

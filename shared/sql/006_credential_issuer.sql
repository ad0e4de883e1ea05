-- Who signed the credential event this row took (shared/signing.py): admin (the credentials CLI: machines and
-- anything long-lived), supervision (a person's session: name = the account's username, unique there) or notify (a
-- resident's session: name = the resident's opaque id). It decides the credential's sender scope (shared/auth.py
-- Client.sender_scope): a session is its person's, anything else its own credential's. NULL: learnt before this
-- column existed, treated as a credential of its own (never shares a scope by name).
ALTER TABLE credentials ADD COLUMN IF NOT EXISTS issuer text;

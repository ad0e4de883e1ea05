-- Photos stored by wangge (POST /api/v1/media; shared/media.py keeps the bytes, content-addressed).
-- One row per stored photo, and one per upload of it: who sent it, when, how big it came and what it became.
-- The uploader is the credential's actor (operator:<name>, owner:<code>, terminal:<name>): who uploaded a
-- photo may fetch it before any case carries it (GET /media/<id>, intake's answer behind the front door).
CREATE TABLE IF NOT EXISTS media (
    media_id         text        PRIMARY KEY CHECK (media_id ~ '^[0-9a-f]{64}$'),
    stored_bytes     integer     NOT NULL,
    thumbnail_bytes  integer     NOT NULL,
    width            integer     NOT NULL,
    height           integer     NOT NULL,
    first_stored_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS media_uploads (
    upload_id       bigserial   PRIMARY KEY,
    media_id        text        NOT NULL REFERENCES media (media_id),
    uploaded_by     text        NOT NULL,
    role            text        NOT NULL,
    uploaded_at     timestamptz NOT NULL DEFAULT now(),
    original_bytes  integer     NOT NULL,
    original_type   text        NOT NULL,
    original_format text        NOT NULL
);
CREATE INDEX IF NOT EXISTS media_uploads_by_media ON media_uploads (media_id, uploaded_by);

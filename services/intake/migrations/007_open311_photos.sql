-- Photos an anonymous Open311 client may fetch (issue 19: FixMyStreet's add_media fetches an update's media_url
-- without a credential). A photo gets its public id (a keyed hash of its media id, services/intake/domain/open311.py
-- public_photo_id) when it first appears in a public step of a case: the report's photos when the case is accepted,
-- the owner's, the check's and the residents' photos of later steps. Only these are served, as their thumbnail.
CREATE TABLE IF NOT EXISTS open311_photos (
    public_id    text        PRIMARY KEY,
    media_id     text        NOT NULL,
    case_id      uuid        NOT NULL,
    shown_since  timestamptz NOT NULL DEFAULT now()
);

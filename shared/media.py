"""Photos stored by wangge: content-addressed blobs behind a storage interface, and their URL forms.

A photo's id is the SHA-256 (hex) of the bytes stored for it (intake re-encodes every upload, so the
stored bytes are always wangge's own JPEG); its thumbnail is kept beside it under the same id. What
a message carries is the relative URL `/media/<id>` the upload answered; the front door serves it.

The interface (`MediaStore`: put/get/exists by id and variant) is all the services use. Two stores:
- `FolderStore` (the default): a local folder, for one machine;
- `S3Store` (shared/media_s3.py, WANGGE_MEDIA_S3_ENDPOINT set): a bucket of an S3-compatible server, the ids
  its object keys (`<id>` and `<id>.thumbnail`), so that every instance of intake and supervision serves every
  photo whichever instance took the upload.
put is idempotent by construction (same id, same bytes). A store that cannot answer raises
`MediaStoreUnavailable`, which the HTTP doors answer 503 (shared/http.py): never a 500, never an upload
answered before its bytes are stored.
Intake writes (it owns the uploads); supervision and intake read, to serve a photo to who may see it.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Literal, Protocol

# What a media id is: exactly 64 lower-case hex digits. Anything else (a path, '..', upper case) is no id.
MEDIA_ID = re.compile(r"^[0-9a-f]{64}$")
# The relative URL a message carries for a stored photo.
MEDIA_PATH = re.compile(r"^/media/([0-9a-f]{64})$")

Variant = Literal["image", "thumbnail"]
VARIANTS: tuple[Variant, ...] = ("image", "thumbnail")


def is_media_id(text: str) -> bool:
    return bool(MEDIA_ID.fullmatch(text))


def media_url(media_id: str) -> str:
    return f"/media/{media_id}"


def thumbnail_url(media_id: str) -> str:
    return f"/media/{media_id}/thumbnail"


def media_id_of(url: str) -> str | None:
    """The id of a stored photo's relative URL, or None for any other URL (an absolute one: hosted elsewhere)."""
    found = MEDIA_PATH.fullmatch(url)
    return found.group(1) if found else None


def stored_name(media_id: str, variant: Variant) -> str:
    """A photo's name in a store (a file name, an object key): `<id>` or `<id>.thumbnail`. The id is checked here as
    well as at every door: this is the one place an id becomes a name (never a path, '..', upper case)."""
    if not is_media_id(media_id) or variant not in VARIANTS:
        raise ValueError(f"not a media id: {media_id[:80]!r}")
    return media_id if variant == "image" else f"{media_id}.thumbnail"


class MediaStoreUnavailable(Exception):
    """The store did not answer (its server away, refused our credentials, timed out): try again later."""


class MediaStore(Protocol):
    """Where stored photos live. Keys are (id, variant); values are whole JPEG files."""

    def put(self, media_id: str, variant: Variant, data: bytes) -> bool:
        """Store the bytes (durably, before returning); False when they were there already."""

    def get(self, media_id: str, variant: Variant) -> bytes | None:
        """The stored bytes, or None."""

    def exists(self, media_id: str, variant: Variant = "image") -> bool:
        """Whether the bytes are stored."""


class FolderStore:
    """A MediaStore in a local folder: <root>/<id[:2]>/<id> and <id>.thumbnail, written atomically and fsynced."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def _path(self, media_id: str, variant: Variant) -> Path:
        return self.root / media_id[:2] / stored_name(media_id, variant)

    def put(self, media_id: str, variant: Variant, data: bytes) -> bool:
        path = self._path(media_id, variant)
        if path.exists():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written to a temporary file in the same folder, fsynced, then renamed: a reader never sees half a
        # photo, and a photo whose URL was answered survives a crash of the machine.
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        return True

    def get(self, media_id: str, variant: Variant) -> bytes | None:
        try:
            return self._path(media_id, variant).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, media_id: str, variant: Variant = "image") -> bool:
        return self._path(media_id, variant).is_file()


def store_from_settings(settings) -> MediaStore:  # type: ignore[no-untyped-def]
    """The store the settings name: the S3 bucket when WANGGE_MEDIA_S3_ENDPOINT is set (shared/media_s3.py), else
    the folder (WANGGE_MEDIA_DIR; default $WANGGE_STATE_DIR/media, else <repo>/.local/media)."""
    if settings.media_s3_endpoint:
        from shared.media_s3 import S3Store  # boto3 is imported only by a process that uses it

        return S3Store.from_settings(settings)
    return FolderStore(settings.media_folder())

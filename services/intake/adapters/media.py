"""SQL for intake's record of stored photos and their uploads (migration 005), and of the photos Open311 clients
may fetch without a credential (migration 007)."""
from __future__ import annotations

import uuid

import asyncpg

from services.intake.domain.open311 import PublicPhotos
from services.intake.domain.photos import StoredPhoto
from shared.media import media_id_of


async def record_upload(conn: asyncpg.Connection, photo: StoredPhoto, *, uploaded_by: str, role: str,
                        original_bytes: int, original_type: str) -> bool:
    """One upload of this photo by this caller; True when the photo was new to intake."""
    new = await conn.fetchval(
        """INSERT INTO media (media_id, stored_bytes, thumbnail_bytes, width, height) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (media_id) DO NOTHING RETURNING true""",
        photo.media_id, len(photo.image), len(photo.thumbnail), photo.width, photo.height)
    await conn.execute(
        """INSERT INTO media_uploads (media_id, uploaded_by, role, original_bytes, original_type, original_format)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        photo.media_id, uploaded_by, role, original_bytes, original_type[:100], photo.source_format)
    return bool(new)


async def uploaded_by(pool: asyncpg.Pool, media_id: str, actor: str) -> bool:
    """Whether this caller uploaded this photo."""
    return bool(await pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM media_uploads WHERE media_id = $1 AND uploaded_by = $2)", media_id, actor))


async def known(conn: asyncpg.Connection | asyncpg.Pool, media_ids: list[str]) -> set[str]:
    """Which of these photos intake stored."""
    rows = await conn.fetch("SELECT media_id FROM media WHERE media_id = ANY($1::text[])", media_ids)
    return {row["media_id"] for row in rows}


async def not_stored(conn: asyncpg.Connection | asyncpg.Pool, media: list[str]) -> list[str]:
    """The relative photo URLs (/media/<id>) of a message that name no photo intake stored (absolute ones pass)."""
    wanted = {url: media_id_of(url) for url in media if media_id_of(url)}
    if not wanted:
        return []
    stored = await known(conn, list(wanted.values()))
    return [url for url, media_id in wanted.items() if media_id not in stored]


def not_stored_reason(url: str) -> str:
    return (f"media: {url} names no photo stored by wangge; upload it first with POST /api/v1/media "
            "(照片不存在，请先上传)")



async def public_photo(conn: asyncpg.Connection | asyncpg.Pool, public_id: str) -> str | None:
    """The media id behind a public photo id, or None if no public step showed it."""
    return await conn.fetchval("SELECT media_id FROM open311_photos WHERE public_id = $1", public_id)


async def show_publicly(conn: asyncpg.Connection, photos: PublicPhotos,
                        shown: list[tuple[uuid.UUID, list[str]]]) -> None:
    """The stored photos among the URLs each step of a batch showed (case, URLs) become fetchable by their public
    id: one statement for the batch."""
    rows = [(ids[0], ids[1], case_id) for case_id, media in shown for ids in map(photos.id_of, media) if ids]
    if rows:
        await conn.execute(
            """INSERT INTO open311_photos (public_id, media_id, case_id)
               SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[]) ON CONFLICT (public_id) DO NOTHING""",
            *(list(column) for column in zip(*rows)))

"""Photos: POST /api/v1/media stores one (intake owns the uploads); GET /media/<id> serves it to its uploader.

Behind the front door, GET /media/<id> is asked of supervision first (who may see a case carrying the photo)
and of intake only when supervision says 404: intake answers the uploader (before any message carries the
photo), and operators. See shared/media_http.py and deploy/nginx/nginx.conf.tmpl.
"""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from services.intake.adapters import media as media_sql
from services.intake.domain.photos import PhotoRefused, StoredPhoto, process
from services.intake.metrics import MEDIA_UPLOADS
from shared import media_http
from shared.auth import Client, require
from shared.http import refusal
from shared.media import MediaStore, media_url, thumbnail_url
from shared.runtime import ServiceRuntime

UPLOADERS = ("terminal", "owner", "operator", "resident")  # resident: a phone a one-time code proved (/my/)
VIEWERS = ("terminal", "owner", "operator", "admin", "resident")
# Decoding a 40-megapixel PNG takes ~120 MB per copy (a few copies: rotated, sRGB) and a core for a moment: one at
# a time per process keeps an instance within its memory limit (deploy/k8s: 768Mi); a street uploads a few a minute.
DECODING_AT_ONCE = 1


class StoredMedia(BaseModel):
    """A stored photo: put `url` in a message's `media`; `thumbnail_url` is the small one for lists."""

    id: str = Field(description="SHA-256 (hex) of the stored image: the same photo twice has the same id")
    url: str = Field(description="/media/<id>, served by the front door to who may see a case carrying it")
    thumbnail_url: str = Field(description="/media/<id>/thumbnail (320 px on the longer side)")


_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary",
                            "description": "one photo: image/jpeg, image/png, image/webp or image/heic"}}}}}}}


async def store_photo(runtime: ServiceRuntime, store: MediaStore, decoding: asyncio.Semaphore, data: bytes,
                      claimed: str, client: Client) -> StoredPhoto:
    """Decode, re-encode and store one uploaded photo, and record who uploaded it (POST /api/v1/media, and the
    photos of Open311's multipart posts). Raises PhotoRefused."""
    async with decoding:
        photo: StoredPhoto = await asyncio.to_thread(process, data, claimed, max_pixels=runtime.settings.media_max_pixels)
    # The bytes first, then the record: a record never names a photo that is not stored (a crash in between
    # leaves an unrecorded file, harmless: the same upload again finds it and records it).
    await asyncio.to_thread(store.put, photo.media_id, "thumbnail", photo.thumbnail)
    await asyncio.to_thread(store.put, photo.media_id, "image", photo.image)
    async with runtime.uow() as uow:
        new = await media_sql.record_upload(uow.conn, photo, uploaded_by=client.actor, role=client.role,
                                            original_bytes=len(data), original_type=claimed)
        await uow.commit()
    MEDIA_UPLOADS.labels("intake", "stored" if new else "duplicate").inc()
    return photo


def build_media_router(runtime: ServiceRuntime, store: MediaStore, decoding: asyncio.Semaphore) -> APIRouter:
    """POST /api/v1/media and GET /media/<id>; `decoding` bounds the photos decoded at once (shared with Open311)."""
    router = APIRouter(tags=["media"])
    settings = runtime.settings

    def refused(status: int, reason: str, outcome: str) -> HTTPException:
        MEDIA_UPLOADS.labels("intake", outcome).inc()
        return HTTPException(status, reason)

    @router.post("/api/v1/media", status_code=201, openapi_extra=_UPLOAD_BODY, response_model=StoredMedia, responses={
        413: refusal("the file is larger than the limit (10 MB), or has more pixels than the limit (40 MP)"),
        415: refusal("not multipart/form-data, or the file is not sent as (or is not) JPEG, PNG, WebP or HEIC"),
        422: refusal("no `file` field, or the file is not a decodable image"),
        503: refusal("the photo store (an S3 server) or the database does not answer for now: nothing was stored, "
                     "send the photo again")})
    async def upload(request: Request, client: Client = Depends(require(*UPLOADERS))) -> JSONResponse:
        """Store a photo (multipart, field `file`): decoded to prove it is an image, re-encoded as JPEG without
        EXIF but its capture time (orientation applied), with a thumbnail; content-addressed."""
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise refused(415, "send the photo as multipart/form-data with the field `file` "
                               "(请以multipart/form-data上传，字段名file)", "not-multipart")
        try:
            form = await request.form(max_files=1, max_fields=4)
        except MultiPartException as bad:
            raise refused(422, f"the multipart body does not parse: {bad.message} (上传内容格式错误)", "not-multipart")
        try:
            part = form.get("file")
            if not isinstance(part, UploadFile):
                raise refused(422, "the photo must be in the multipart field `file`, as a file (缺少file字段)",
                              "no-file")
            data = await part.read(settings.media_max_bytes + 1)
            if len(data) > settings.media_max_bytes:
                raise refused(413, f"the photo is larger than {settings.media_max_bytes // (1024 * 1024)} MB "
                                   f"(照片不能超过{settings.media_max_bytes // (1024 * 1024)}MB)", "too-big")
            claimed = part.content_type or ""
        finally:
            await form.close()
        try:
            photo = await store_photo(runtime, store, decoding, data, claimed, client)
        except PhotoRefused as no:
            raise refused(no.status, no.reason, {413: "too-many-pixels", 415: "wrong-type"}.get(no.status,
                                                                                              "not-an-image"))
        answer = StoredMedia(id=photo.media_id, url=media_url(photo.media_id), thumbnail_url=thumbnail_url(photo.media_id))
        return JSONResponse(answer.model_dump(), status_code=201)

    async def may_see(client: Client, media_id: str) -> bool:
        return client.role in ("operator", "admin") or await media_sql.uploaded_by(runtime.pool, media_id,
                                                                                  client.actor)

    # The front door asks supervision first: what reaches intake is a photo no case carries yet.
    media_http.photo_routes(router, store, may_see, viewers=VIEWERS, who="the caller uploaded (or an operator)")
    return router

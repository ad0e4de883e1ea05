"""Serving a stored photo over HTTP: the same answer from whichever service decides the caller may see it.

Behind the front door, `GET /media/<id>` goes to supervision (who may see a case carrying it) and, when it
says 404, to intake (who uploaded it): deploy/nginx/nginx.conf.tmpl. Each answers with `answer(...)`.

A photo the caller may not see is the same 404 as one that does not exist, with the same words: the id
is the SHA-256 of the photo, so a 403 would tell whoever holds a copy of a photo that wangge stores it.
"""
from __future__ import annotations

import asyncio

from fastapi import HTTPException, Request
from fastapi.responses import Response

from shared.media import MediaStore, Variant, is_media_id

NOT_FOUND = ("no such photo, or not one of yours: a photo is shown to who may see a case carrying it, or who "
             "uploaded it (照片不存在或无权查看)")
# Private: a photo is personal to the cases it belongs to, so no shared cache keeps it. Its bytes never change
# (content-addressed), so the browser may keep its own copy for a day and revalidate by ETag after.
CACHE_CONTROL = "private, max-age=86400"


def checked_id(media_id: str) -> str:
    """The id, or the 404 every malformed id gets (a path, '..', upper case: never a file name)."""
    if not is_media_id(media_id):
        raise HTTPException(404, NOT_FOUND)
    return media_id


def not_found() -> HTTPException:
    return HTTPException(404, NOT_FOUND)


async def answer(store: MediaStore, media_id: str, variant: Variant, request: Request) -> Response:
    """200 with the JPEG (or 304 for the ETag the browser has), 404 if it is not stored."""
    etag = f'"{media_id}"' if variant == "image" else f'"{media_id}.thumbnail"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "X-Content-Type-Options": "nosniff",
               "Content-Disposition": "inline"}
    if etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
        if await asyncio.to_thread(store.exists, media_id, variant):
            return Response(status_code=304, headers=headers)
    data = await asyncio.to_thread(store.get, media_id, variant)
    if data is None:
        raise not_found()
    return Response(data, media_type="image/jpeg", headers=headers)

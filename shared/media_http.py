"""Serving a stored photo over HTTP: the same answer from whichever service decides the caller may see it.

Behind the front door, `GET /media/<id>` goes to supervision (who may see a case carrying it) and, when it
says 404, to intake (who uploaded it): deploy/nginx/nginx.conf.tmpl. Each answers with `answer(...)`.

A photo the caller may not see is the same 404 as one that does not exist, with the same words: the id
is the SHA-256 of the photo, so a 403 would tell whoever holds a copy of a photo that wangge stores it.
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from shared.auth import Client, require
from shared.http import refusal
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


def photo_routes(router: APIRouter, store: MediaStore, may_see: Callable[[Client, str], Awaitable[bool]], *,
                 viewers: tuple[str, ...], who: str) -> None:
    """`GET /media/<id>` and `/media/<id>/thumbnail` on `router`, answered to the callers `may_see` admits (`who`
    says whom, for the API's description) and the same 404 to every other."""

    async def serve(media_id: str, variant: Variant, request: Request, client: Client) -> Response:
        media_id = checked_id(media_id)
        if not await may_see(client, media_id):
            raise not_found()
        return await answer(store, media_id, variant, request)

    responses: dict[int | str, dict[str, Any]] = {
        200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
              "description": "the photo (JPEG); ETag = its id, Cache-Control private"},
        304: {"description": "the browser's copy (If-None-Match) is the photo"},
        404: refusal(f"no such photo, or not one {who} (the same answer: ids are not confirmed)"),
        503: refusal("the photo store (an S3 server) does not answer for now: retry")}

    @router.get("/media/{media_id}", response_class=Response, responses=responses)
    async def photo(media_id: str, request: Request, client: Client = Depends(require(*viewers))) -> Response:
        return await serve(media_id, "image", request, client)

    @router.get("/media/{media_id}/thumbnail", response_class=Response, responses=responses)
    async def thumbnail(media_id: str, request: Request, client: Client = Depends(require(*viewers))) -> Response:
        """The photo's thumbnail (320 px), on the same terms."""
        return await serve(media_id, "thumbnail", request, client)

    photo.__doc__ = f"A photo, to {who}."

"""GET /media/<id> (and its thumbnail) for who may see a case carrying the photo.

Supervision decides, because it knows the cases and their photos: every event it keeps names its photos
(reported, progress, resolution, check), and the read model and dispatches say who holds or held each case.
- operator, admin: any stored photo;
- owner: a photo of a case whose task it holds or held;
- coordinator (role terminal): a photo of a case they reported, or of a case in their unit grid(s).
Anything else is the same 404 as a photo that does not exist (shared/media_http.py says why). The uploader of
a photo no case carries yet is intake's to recognise: the front door asks intake when this answers 404.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services.supervision.adapters import media_access
from shared import media_http
from shared.auth import Client, require
from shared.http import refusal
from shared.media import MediaStore, media_url
from shared.runtime import ServiceRuntime
from shared.street import Street

# A resident is admitted only to be told 404 here: the front door then asks intake, which shows a photo to who
# uploaded it — so a resident sees their own report's photos and no one else's.
VIEWERS = ("terminal", "owner", "operator", "admin", "resident")


def build_media_router(runtime: ServiceRuntime, store: MediaStore, street: Street) -> APIRouter:
    router = APIRouter(tags=["media"])
    unit_grids = street.coordinator_grids()

    async def may_see(client: Client, media_id: str) -> bool:
        url = media_url(media_id)
        if client.role in ("operator", "admin"):
            return True
        if client.role == "owner" and client.owner_code:
            return await media_access.owner_may_see(runtime.pool, url, client.owner_code)
        if client.role == "terminal":
            return await media_access.coordinator_may_see(runtime.pool, url, client.worker_id,
                                                          unit_grids.get(client.worker_id or "", []))
        return False

    async def serve(media_id: str, variant: str, request: Request, client: Client) -> Response:
        media_id = media_http.checked_id(media_id)
        if not await may_see(client, media_id):
            raise media_http.not_found()
        return await media_http.answer(store, media_id, variant, request)  # type: ignore[arg-type]

    responses: dict[int | str, dict[str, Any]] = {
        200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
              "description": "the photo (JPEG); ETag = its id, Cache-Control private"},
        304: {"description": "the browser's copy (If-None-Match) is the photo"},
        404: refusal("no such photo, or no case this caller may see carries it (the same answer)")}

    @router.get("/media/{media_id}", response_class=Response, responses=responses)
    async def photo(media_id: str, request: Request, client: Client = Depends(require(*VIEWERS))) -> Response:
        """A photo, to a caller who may see a case carrying it."""
        return await serve(media_id, "image", request, client)

    @router.get("/media/{media_id}/thumbnail", response_class=Response, responses=responses)
    async def thumbnail(media_id: str, request: Request, client: Client = Depends(require(*VIEWERS))) -> Response:
        """The photo's thumbnail (320 px), on the same terms."""
        return await serve(media_id, "thumbnail", request, client)

    return router

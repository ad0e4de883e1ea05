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

from fastapi import APIRouter

from services.supervision.adapters import media_access
from shared import media_http
from shared.auth import Client
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

    media_http.photo_routes(router, store, may_see, viewers=VIEWERS, who="of a case this caller may see")
    return router

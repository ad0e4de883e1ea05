"""Open311's public photo URLs, attacked. A photo's media_url in an Open311 answer is a public thumbnail an anonymous
client (FixMyStreet's add_media) fetches without a credential: <public_url>/open311/v2/media/<public id>.jpg. Tried:
the photo's own media id in that place, a made-up public id, a path, the public id of a photo that is in no public
step (a held report's), and the answer read for the media id; only the thumbnail of a photo of a public case is
served, with no credential, and it carries no EXIF (no place, no phone model)."""
from __future__ import annotations

import asyncio
import io
import re
from datetime import timedelta

import pytest
from PIL import Image

from services.intake.domain.open311 import public_photo_id
from shared.clock import now
from tests.integration.test_open311 import FORM, client, intake  # noqa: F401 (the fixture)
from tests.photos import phone_jpeg

pytestmark = pytest.mark.integration

PUBLIC = re.compile(r"/open311/v2/media/([0-9a-f]{32})\.jpg$")


async def _photo(http, colour) -> str:
    """A photo posted as a report's multipart `media`; the report's case number."""
    posted = await http.post("/open311/v2/requests.json", data={**FORM, "api_key": "o311-portal"},
                             files={"media": ("p.jpg", phone_jpeg(colour=colour), "image/jpeg")})
    assert posted.status_code == 201, posted.text
    return posted.json()[0]["service_request_id"]


async def test_only_a_public_cases_photo_is_served_anonymously_and_only_as_its_thumbnail(intake, isolated):
    key = isolated.resident_secret()
    pool = intake.runtime.pool
    async with client(intake) as http:
        case_no = await _photo(http, (200, 30, 30))
        # A held report (the registry does not know the place): not public, its photo neither.
        held = await http.post("/open311/v2/requests.json", files={"media": ("q.jpg", phone_jpeg(colour=(30, 200, 30)),
                                                                            "image/jpeg")},
                               data={**FORM, "api_key": "o311-portal", "lat": "", "long": "",
                                     "address_string": "某个不存在的地方"})
        held_no = held.json()[0]["service_request_id"]
        media = await pool.fetchval("SELECT media->>0 FROM reports WHERE case_no = $1", case_no)
        held_media = await pool.fetchval("SELECT media->>0 FROM reports WHERE case_no = $1", held_no)
        media_id, held_id = media.rsplit("/", 1)[1], held_media.rsplit("/", 1)[1]

        async def public_url() -> str:
            while True:  # the case's acceptance reached intake's reader of wangge.cases
                read = (await http.get(f"/open311/v2/requests/{case_no}.json")).json()[0]
                served = await pool.fetchval("SELECT count(*) FROM open311_photos WHERE media_id = $1", media_id)
                if served:
                    return read["media_url"]
                await asyncio.sleep(0.2)
        url = await asyncio.wait_for(public_url(), 30)
        found = PUBLIC.search(url)
        assert url.startswith(isolated.public_url.rstrip("/")) and found, url
        assert media_id not in url  # the media id (the photo's SHA-256) is not given away

        ok = await http.get(found.group(0))  # no credential
        assert ok.status_code == 200 and ok.headers["content-type"] == "image/jpeg", ok.text
        assert ok.headers["cache-control"].startswith("public")
        image = Image.open(io.BytesIO(ok.content))
        assert max(image.size) <= 320 and not image.getexif()  # the thumbnail, without the phone's EXIF

        for attempt in (f"/open311/v2/media/{media_id}.jpg",                  # the media id itself
                        f"/open311/v2/media/{media_id[:32]}.jpg",             # its first half
                        f"/open311/v2/media/{'0' * 32}.jpg",                  # a made-up public id
                        f"/open311/v2/media/{public_photo_id(key, held_id)}.jpg",  # a held report's photo
                        f"/open311/v2/media/{public_photo_id(b'another key', media_id)}.jpg",
                        "/open311/v2/media/..%2F..%2Fetc%2Fpasswd.jpg",
                        f"/open311/v2/media/{found.group(1).upper()}.jpg"):
            refused = await http.get(attempt)
            assert refused.status_code == 404 and refused.headers["content-type"].startswith("application/json"), \
                (attempt, refused.status_code)
            assert ok.content not in refused.content
        # The full-size photo stays behind a credential.
        assert (await http.get(f"/media/{media_id}")).status_code in (401, 404)

        updates = await http.get("/open311/v2/servicerequestupdates.json",
                                 params={"start_date": (now() - timedelta(minutes=5)).isoformat()})
        assert media_id not in updates.text and held_id not in updates.text

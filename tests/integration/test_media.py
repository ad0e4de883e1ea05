"""Photos stored by wangge (POST /api/v1/media, intake) on the real PostgreSQL and the folder store: decoded,
re-encoded without EXIF but the capture time, orientation applied, a thumbnail, content-addressed (the same
photo twice is one id, stored once), each upload recorded; the uploader fetches it; messages carry its URL."""
from __future__ import annotations

import asyncio
import hashlib

import httpx
import pytest

from services.intake.bootstrap import build
from shared.contracts import Envelope
from tests.integration.test_intake_service import report_body
from tests.photos import (DATETIME_ORIGINAL, EXIF_IFD, GPS_IFD, MAKE, ORIENTATION, opened, phone_jpeg, png,
                          stored_files, webp)
from tests.support import TopicReader, grant, publish, running

pytestmark = pytest.mark.integration

TERMINAL, OWNER, OTHER_OWNER, OPERATOR, HOTLINE = "m-terminal", "m-owner", "m-owner-2", "m-operator", "m-hotline"


@pytest.fixture
async def intake(isolated):
    async with running(build(isolated, manage_runtime=False)) as service:
        await grant(isolated, service, token=TERMINAL, name="网格员001终端", role="terminal", worker_id="W001",
                    device_id="SZT-0001")
        await grant(isolated, service, token=OWNER, name="环卫所", role="owner", owner_code="huanwei")
        await grant(isolated, service, token=OTHER_OWNER, name="城管", role="owner", owner_code="chengguan")
        await grant(isolated, service, token=OPERATOR, name="值班员", role="operator")
        await grant(isolated, service, token=HOTLINE, name="12345", role="hotline")
        yield service


def client(service, token: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://intake",
                             headers=headers, timeout=20)


async def upload(service, token: str | None, data: bytes, content_type: str = "image/jpeg",
                 name: str = "photo.jpg") -> httpx.Response:
    async with client(service, token) as http:
        return await asyncio.wait_for(http.post("/api/v1/media", files={"file": (name, data, content_type)}), 30)


async def test_a_phone_photo_is_stored_without_gps_upright_with_its_capture_time_and_a_thumbnail(intake, isolated):
    answer = await upload(intake, TERMINAL, phone_jpeg(400, 200))
    assert answer.status_code == 201, answer.text
    stored = answer.json()
    media_id = stored["id"]
    assert stored == {"id": media_id, "url": f"/media/{media_id}", "thumbnail_url": f"/media/{media_id}/thumbnail"}

    async with client(intake, TERMINAL) as http:  # the uploader sees it at once, before any case carries it
        image = await http.get(stored["url"])
        small = await http.get(stored["thumbnail_url"])
    assert image.status_code == 200 and small.status_code == 200
    assert hashlib.sha256(image.content).hexdigest() == media_id  # content-addressed: the id is the bytes' SHA-256
    photo = opened(image.content)
    assert photo.format == "JPEG" and photo.size == (200, 400)  # orientation 6 applied to the pixels: portrait
    assert photo.getpixel((190, 10))[2] > 150  # the top-left blue mark is now top-right (rotated clockwise)
    exif = photo.getexif()
    assert ORIENTATION not in exif and MAKE not in exif  # nothing but the capture time is kept
    assert not exif.get_ifd(GPS_IFD)  # where it was taken is gone
    assert exif.get_ifd(EXIF_IFD) == {DATETIME_ORIGINAL: "2026:12:01 09:12:00"}
    thumbnail = opened(small.content)
    assert thumbnail.format == "JPEG" and max(thumbnail.size) <= 320 and thumbnail.size[1] > thumbnail.size[0]
    assert not thumbnail.getexif()
    for answer in (image, small):
        assert answer.headers["content-type"] == "image/jpeg"
        assert answer.headers["cache-control"].startswith("private")
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert image.headers["etag"] == f'"{media_id}"'

    # Recorded: who, when, how big, what it became.
    row = await intake.runtime.pool.fetchrow(
        """SELECT m.width, m.height, m.stored_bytes, u.uploaded_by, u.role, u.original_bytes, u.original_type,
                  u.original_format, u.uploaded_at FROM media m JOIN media_uploads u USING (media_id)
            WHERE media_id = $1""", media_id)
    assert (row["width"], row["height"]) == (200, 400) and row["stored_bytes"] == len(image.content)
    assert row["uploaded_by"] == "terminal:网格员001终端" and row["role"] == "terminal"
    assert row["original_bytes"] == len(phone_jpeg(400, 200)) and row["original_type"] == "image/jpeg"
    assert row["original_format"] == "JPEG" and row["uploaded_at"] is not None

    # The browser's copy is still good: 304 by ETag.
    async with client(intake, TERMINAL) as http:
        again = await http.get(stored["url"], headers={"If-None-Match": f'"{media_id}"'})
    assert again.status_code == 304 and not again.content


async def test_png_and_webp_are_taken_and_the_same_photo_twice_is_one_id_stored_once(intake, isolated):
    first = await upload(intake, OWNER, png(), "image/png", "a.png")
    assert first.status_code == 201, first.text
    second = await upload(intake, OPERATOR, webp(), "image/webp", "b.webp")
    assert second.status_code == 201, second.text
    files = stored_files(isolated.media_dir)
    assert len(files) == 4  # two photos, each with its thumbnail

    again = await upload(intake, OWNER, png(), "image/png", "a-again.png")
    by_other = await upload(intake, TERMINAL, png(), "image/png", "same.png")
    assert again.status_code == 201 and by_other.status_code == 201
    assert again.json()["id"] == by_other.json()["id"] == first.json()["id"]
    assert stored_files(isolated.media_dir) == files  # stored once
    pool = intake.runtime.pool
    assert await pool.fetchval("SELECT count(*) FROM media") == 2
    assert await pool.fetchval("SELECT count(*) FROM media_uploads WHERE media_id = $1", first.json()["id"]) == 3
    async with client(intake, OWNER) as http:
        png_photo = opened((await http.get(first.json()["url"])).content)
    assert png_photo.format == "JPEG" and png_photo.mode == "RGB" and png_photo.size == (300, 300)


async def test_who_may_fetch_from_intake_the_uploader_and_operators_only(intake):
    media_id = (await upload(intake, OWNER, phone_jpeg(colour=(1, 2, 3)))).json()["id"]
    url = f"/media/{media_id}"
    async with client(intake, OWNER) as owner, client(intake, OTHER_OWNER) as other, \
            client(intake, OPERATOR) as operator, client(intake, TERMINAL) as terminal, \
            client(intake, HOTLINE) as hotline, client(intake, None) as anonymous:
        assert (await owner.get(url)).status_code == 200
        assert (await operator.get(url)).status_code == 200
        assert (await anonymous.get(url)).status_code == 401
        assert (await hotline.get(url)).status_code == 403
        # Another owner, another coordinator: the same 404 as a photo that does not exist (no existence leaks).
        not_theirs = await other.get(url)
        nowhere = await other.get(f"/media/{'0' * 64}")
        assert not_theirs.status_code == nowhere.status_code == 404
        assert not_theirs.json()["detail"] == nowhere.json()["detail"]
        assert (await terminal.get(url + "/thumbnail")).status_code == 404


async def test_reports_carry_stored_photos_by_their_relative_url(intake):
    stored = (await upload(intake, TERMINAL, phone_jpeg(colour=(9, 9, 9)))).json()
    async with client(intake, TERMINAL) as http:
        made = await http.post("/api/v1/reports", json=report_body(
            "SZT-0001-media-1", media=[stored["url"], "https://img.example.org/own-hosting/1.jpg"]))
        assert made.status_code == 201, made.text
        row = await intake.runtime.pool.fetchval("SELECT media FROM reports WHERE case_no = $1", made.json()["case_no"])
        assert list(row) == [stored["url"], "https://img.example.org/own-hosting/1.jpg"]

        refused = {
            "unknown": await http.post("/api/v1/reports", json=report_body("m-2", media=[f"/media/{'a' * 64}"])),
            "other path": await http.post("/api/v1/reports", json=report_body("m-3", media=["/etc/passwd"])),
            "script": await http.post("/api/v1/reports", json=report_body("m-4", media=["javascript:alert(1)"])),
            "ten": await http.post("/api/v1/reports", json=report_body("m-5", media=[stored["url"]] * 10)),
        }
    for why, answer in refused.items():
        assert answer.status_code == 422, (why, answer.text)
    assert "upload it first" in refused["unknown"].json()["detail"]
    assert "/media/<id>" in refused["other path"].json()["detail"]
    assert "at most 9" in refused["ten"].json()["detail"]


async def test_open311_media_url_stays_absolute(intake):
    stored = (await upload(intake, OPERATOR, phone_jpeg(colour=(5, 5, 5)))).json()
    async with client(intake, None) as http:
        answer = await http.post("/open311/v2/requests.json", data={
            "api_key": HOTLINE, "service_code": "CM04", "lat": "34.871845", "long": "117.575168",
            "description": "垃圾箱损坏", "media_url": stored["url"]})
    assert answer.status_code == 400 and "absolute" in answer.json()[0]["description"]


async def test_reports_on_kafka_carry_stored_photos_and_an_unknown_one_is_rejected_with_the_reason(intake, isolated):
    stored = (await upload(intake, TERMINAL, phone_jpeg(colour=(7, 70, 7)))).json()
    topics, bootstrap = intake.runtime.topics, isolated.kafka_bootstrap
    good = Envelope.new("report.submitted", 1, report_body("K-photo-1", source="hotline", media=[stored["url"]]),
                        source="hotline-bridge")
    unknown = Envelope.new("report.submitted", 1, report_body("K-photo-2", source="hotline",
                                                              media=[f"/media/{'c' * 64}"]), source="hotline-bridge")
    async with TopicReader(bootstrap, topics.cases) as cases, TopicReader(bootstrap, topics.reports_rejected) as rejected:
        await publish(bootstrap, topics.reports, unknown, key="K-photo-2")
        await publish(bootstrap, topics.reports, good, key="K-photo-1")
        reported = await cases.wait_for(lambda m: m["type"] == "case.reported"
                                        and m["data"]["external_id"] == "K-photo-1")
        assert reported["data"]["media"] == [stored["url"]]
        refused = await rejected.wait_for(lambda m: m["_key"] == "K-photo-2")
        assert "names no photo stored by wangge" in refused["data"]["reason"]
    assert await intake.runtime.pool.fetchval("SELECT count(*) FROM reports WHERE external_id = 'K-photo-2'") == 0

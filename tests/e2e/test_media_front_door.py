"""Photos through the front door (nginx from the shipped template, the four services behind it): a coordinator
uploads a photo and sees it at once; a report carrying `/media/<id>` becomes a case whose photo its owner sees;
the owner's resolution photo reaches the coordinator who reported; other owners and coordinators of other grids
get the same 404 as for a photo that does not exist; operators see any."""
from __future__ import annotations

import asyncio
import hashlib
import uuid

import httpx
import pytest

from shared.topics import ensure_topics
from tests.e2e.conftest import TERMINAL_TOKEN
from tests.photos import opened, phone_jpeg
from tests.support import grant

pytestmark = pytest.mark.e2e

POINT = {"lon": 117.575168, "lat": 34.871845}  # unit grid 3704020010010201 (coordinator W004), CM04 → huanwei
OWNER, OTHER_OWNER, OPERATOR = "f-owner-huanwei", "f-owner-chengguan", "f-operator"
GRID_COORDINATOR, OTHER_COORDINATOR = "f-terminal-w004", "f-terminal-w002"


def as_(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


async def test_a_reported_photo_is_shown_to_who_may_see_its_case_and_to_no_one_else(street, front_door):
    services = (street.intake, street.routing, street.supervision, street.notify)
    await ensure_topics(street.settings.kafka_bootstrap,
                        [street.intake.runtime.topics.for_owner(o) for o in ("huanwei", "chengguan")])
    await grant(street.settings, *services, token=OWNER, name="环卫所", role="owner", owner_code="huanwei")
    await grant(street.settings, *services, token=OTHER_OWNER, name="城管", role="owner", owner_code="chengguan")
    await grant(street.settings, *services, token=OPERATOR, name="值班员", role="operator")
    await grant(street.settings, *services, token=GRID_COORDINATOR, name="w004", role="terminal", worker_id="W004",
                device_id="SZT-0004")
    await grant(street.settings, *services, token=OTHER_COORDINATOR, name="w002", role="terminal", worker_id="W002",
                device_id="SZT-0002")

    async with httpx.AsyncClient(base_url=front_door.url, timeout=20) as door:
        async def get(path: str, token: str | None) -> httpx.Response:
            return await asyncio.wait_for(door.get(path, headers=as_(token)), 20)

        # 1. The coordinator's terminal uploads through the front door, and sees its photo at once (intake knows
        #    the uploader; no case carries the photo yet). No one else does.
        uploaded = await door.post("/api/v1/media", headers=as_(TERMINAL_TOKEN),
                                   files={"file": ("bin.jpg", phone_jpeg(640, 480), "image/jpeg")})
        assert uploaded.status_code == 201, uploaded.text
        photo = uploaded.json()
        mine = await get(photo["url"], TERMINAL_TOKEN)
        assert mine.status_code == 200 and hashlib.sha256(mine.content).hexdigest() == photo["id"]
        nowhere = await get(f"/media/{'0' * 64}", OWNER)
        assert nowhere.status_code == 404
        before = await get(photo["url"], OWNER)
        assert before.status_code == 404 and before.json()["detail"] == nowhere.json()["detail"]
        assert (await get(photo["url"], None)).status_code == 401

        # 2. A report carrying it becomes a case, dispatched to 环卫所.
        made = await door.post("/api/v1/reports", headers=as_(TERMINAL_TOKEN), json={
            "source": "terminal", "external_id": f"SZT-0001-{uuid.uuid4().hex[:8]}", "category": "CM04",
            "description": "垃圾箱损坏，垃圾外溢", "location": POINT, "address": None, "reporter": None,
            "coordinator": None, "media": [photo["url"]], "observed_at": "2026-12-06T09:00:00+08:00"})
        assert made.status_code == 201, made.text
        case_no = made.json()["case_no"]

        async def dispatched() -> dict:
            while True:
                case = (await door.get(f"/api/v1/cases/{case_no}", headers=as_(OPERATOR))).json()
                if case.get("state") == "dispatched":
                    return case
                await asyncio.sleep(0.1)
        case = await asyncio.wait_for(dispatched(), 30)
        assert case["owner"] == "huanwei" and case["unit_grid"] == "3704020010010201"

        # 3. Its owner sees the photo and its thumbnail, as a private, never-sniffed JPEG, ETag = id.
        image = await get(photo["url"], OWNER)
        small = await get(photo["thumbnail_url"], OWNER)
        assert image.status_code == 200 and small.status_code == 200, (image.text, small.text)
        assert image.content == mine.content and max(opened(small.content).size) <= 320
        for answer in (image, small):
            assert answer.headers["content-type"] == "image/jpeg"
            assert answer.headers["cache-control"].startswith("private")
            assert answer.headers["x-content-type-options"] == "nosniff"
        assert image.headers["etag"] == f'"{photo["id"]}"'
        assert (await door.get(photo["url"], headers={**as_(OWNER), "If-None-Match": image.headers["etag"]})
                ).status_code == 304
        # The coordinator of the case's unit grid sees it; the operator sees it.
        assert (await get(photo["url"], GRID_COORDINATOR)).status_code == 200
        assert (await get(photo["url"], OPERATOR)).status_code == 200
        # Another owner, a coordinator of another grid: the same 404 as a photo that does not exist.
        for token in (OTHER_OWNER, OTHER_COORDINATOR):
            refused = await get(photo["url"], token)
            assert refused.status_code == 404 and refused.json()["detail"] == nowhere.json()["detail"], token
            assert (await get(photo["thumbnail_url"], token)).status_code == 404

        # 4. The owner signs and resolves with a photo of its own: the coordinator who reported sees it.
        done = await door.post("/api/v1/media", headers=as_(OWNER),
                               files={"file": ("done.jpg", phone_jpeg(480, 640, colour=(30, 160, 30)), "image/jpeg")})
        assert done.status_code == 201, done.text
        result_photo = done.json()
        signed = await door.post(f"/api/v1/tasks/{case_no}/updates", headers=as_(OWNER), json={"type": "task.accepted"})
        assert signed.status_code == 200, signed.text
        unknown = await door.post(f"/api/v1/tasks/{case_no}/updates", headers=as_(OWNER), json={
            "type": "task.resolved", "result": "已更换垃圾箱", "media": [f"/media/{'b' * 64}"]})
        assert unknown.status_code == 422 and "upload it first" in unknown.json()["detail"]
        resolved = await door.post(f"/api/v1/tasks/{case_no}/updates", headers=as_(OWNER), json={
            "type": "task.resolved", "result": "已更换垃圾箱", "media": [result_photo["url"]]})
        assert resolved.status_code == 200, resolved.text

        async def reporter_sees_result() -> None:
            while (await get(result_photo["url"], TERMINAL_TOKEN)).status_code != 200:
                await asyncio.sleep(0.1)
        await asyncio.wait_for(reporter_sees_result(), 20)
        case = (await door.get(f"/api/v1/cases/{case_no}", headers=as_(OPERATOR))).json()
        assert case["result_media"] == [result_photo["url"]]
        assert (await get(result_photo["url"], OTHER_OWNER)).status_code == 404
        assert (await get(result_photo["url"], OTHER_COORDINATOR)).status_code == 404

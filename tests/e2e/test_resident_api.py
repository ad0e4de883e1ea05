"""The resident's side through the front door, API first: a phone proven by the SMS code, a web report with a photo
and the phone's position, the resident's own cases with their replies, and the survey from the signed link."""
from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from tests.photos import phone_jpeg
from tests.support import eventually

pytestmark = pytest.mark.e2e

POINT = {"lon": 117.575168, "lat": 34.871845}  # unit grid 3704020010010201, CM04 → huanwei
PAGE = {"X-Requested-With": "wangge"}


def a_phone() -> str:
    return f"139{uuid.uuid4().int % 10 ** 8:08d}"


async def sms_code(street: Any, phone: str) -> str:
    """The latest code the local SMS sink received for this phone."""
    async def found() -> str | None:
        for message in reversed(street.sms_sink.state.sink.messages):
            if message["to"] == phone and "验证码" in message["text"]:
                return re.search(r"验证码是(\d{6})", message["text"])[1]
        return None
    return await eventually(found, 15, f"the code SMS to {phone}")


async def prove(client: httpx.AsyncClient, street: Any, phone: str) -> dict[str, Any]:
    asked = await client.post("/api/v1/resident/codes", json={"phone": phone})
    assert asked.status_code == 202, asked.text
    assert asked.json()["phone"] == phone[:3] + "****" + phone[-4:]
    proven = await client.post("/api/v1/resident/sessions", json={"phone": phone, "code": await sms_code(street, phone)})
    assert proven.status_code == 200, proven.text
    return proven.json()


def web_report(phone: str, media: list[str]) -> dict[str, Any]:
    return {"source": "web", "external_id": f"my-{uuid.uuid4().hex[:12]}", "category": "CM04",
            "description": "小区门口垃圾箱满了，垃圾外溢", "location": POINT, "reporter": {"phone": phone},
            "media": media, "observed_at": datetime.now(timezone.utc).isoformat()}


async def test_a_resident_proves_the_phone_reports_with_a_photo_and_follows_the_case(street, front_door):
    phone = a_phone()
    async with httpx.AsyncClient(base_url=front_door.url, timeout=20) as client:
        me = await prove(client, street, phone)
        assert me["resident_id"].startswith("r-") and phone not in me["resident_id"]
        assert (await client.get("/api/v1/resident/sessions")).json()["phone"] == phone
        # The suggestion and the categories are open to the resident.
        suggested = await client.get("/api/v1/categories/suggest", params={"text": "垃圾箱满了"})
        assert suggested.status_code == 200, suggested.text
        photo = await client.post("/api/v1/media", files={"file": ("p.jpg", phone_jpeg(), "image/jpeg")}, headers=PAGE)
        assert photo.status_code == 201, photo.text
        made = await client.post("/api/v1/reports", json=web_report(phone, [photo.json()["url"]]), headers=PAGE)
        assert made.status_code == 201, made.text
        case_no = made.json()["case_no"]

        async def acknowledged() -> dict | None:
            cases = (await client.get("/api/v1/resident/cases")).json()["cases"]
            mine = [c for c in cases if c["case_no"] == case_no]
            return mine[0] if mine and mine[0]["replies"] else None
        case = await eventually(acknowledged, 30, "the case with its acknowledgement on the resident's list")
        assert case["status_label"] and case["replies"][0]["kind"] == "acknowledgement"
        assert case_no in case["replies"][0]["text"]
        # Signing out ends the session everywhere: intake refuses the old cookie.
        old = client.cookies.get("wangge_session")
        assert (await client.delete("/api/v1/resident/sessions", headers=PAGE)).status_code == 204
    async with httpx.AsyncClient(base_url=front_door.url, timeout=20, cookies={"wangge_session": old}) as stale:
        await eventually(lambda: _refused(stale), 10, "the ended session refused by intake")


async def _refused(client: httpx.AsyncClient) -> bool:
    answer = await client.post("/api/v1/media", files={"file": ("p.jpg", phone_jpeg(), "image/jpeg")}, headers=PAGE)
    return answer.status_code == 401


async def test_the_survey_is_answered_once_from_the_signed_link(street, front_door):
    from services.notify.handlers import survey_link
    pool = street.notify.runtime.pool
    survey_id = str(uuid.uuid4())
    closes = datetime.now(timezone.utc) + timedelta(days=3)
    await pool.execute("INSERT INTO case_status (case_id, case_no, state, event_id, changed_at) "
                       "VALUES ('c-link', '20261206-9001', 'closed', 'e-link', now())")
    await pool.execute("INSERT INTO surveys (survey_id, case_id, case_no, source_event_id, opened_at, closes_at) "
                       "VALUES ($1::uuid, 'c-link', '20261206-9001', 'e-link', now(), $2)", survey_id, closes)
    link = survey_link(street.settings, survey_id, closes)
    token = link.split("?s=", 1)[1]
    async with httpx.AsyncClient(base_url=front_door.url, timeout=20) as client:
        shown = await client.get(f"/api/v1/resident/surveys/{token}")
        assert shown.status_code == 200 and shown.json()["case_no"] == "20261206-9001" and not shown.json()["answered"]
        answered = await client.post(f"/api/v1/resident/surveys/{token}", json={"verdict": "satisfied"})
        assert answered.status_code == 200 and answered.json()["verdict_label"] == "满意", answered.text
        again = await client.post(f"/api/v1/resident/surveys/{token}", json={"verdict": "unsatisfied"})
        assert again.status_code == 409
    await asyncio.sleep(0)


async def test_a_residents_comment_with_a_photo_reaches_the_holder_once_and_not_on_anothers_case(street, front_door):
    from shared.topics import Topics, ensure_topics
    from tests.support import TopicReader
    owner_topic = Topics(street.settings.topic_prefix).tasks("huanwei")
    await ensure_topics(street.settings.kafka_bootstrap, [Topics(street.settings.topic_prefix).for_owner("huanwei")])
    phone, other = a_phone(), a_phone()
    async with httpx.AsyncClient(base_url=front_door.url, timeout=20) as client, \
            httpx.AsyncClient(base_url=front_door.url, timeout=20) as stranger:
        await prove(client, street, phone)
        await prove(stranger, street, other)
        made = await client.post("/api/v1/reports", json=web_report(phone, []), headers=PAGE)
        assert made.status_code == 201, made.text
        case_no = made.json()["case_no"]
        # Held by its owner (环卫所): the note goes to the holder.
        pool = street.supervision.runtime.pool
        await eventually(lambda: _state_is(pool, case_no, "dispatched"), 30, "the case dispatched")
        photo = await client.post("/api/v1/media", files={"file": ("c.jpg", phone_jpeg(), "image/jpeg")}, headers=PAGE)
        body = {"text": "垃圾还在，又多了两袋", "media": [photo.json()["url"]], "client_id": f"c-{uuid.uuid4().hex[:8]}"}
        async with TopicReader(street.settings.kafka_bootstrap, owner_topic) as reader:
            async def sent() -> dict | None:
                answer = await client.post(f"/api/v1/resident/cases/{case_no}/comments", json=body, headers=PAGE)
                return answer.json() if answer.status_code in (200, 201) else None
            first = await eventually(sent, 30, "the comment taken (once the case is intake's)")
            again = await client.post(f"/api/v1/resident/cases/{case_no}/comments", json=body, headers=PAGE)
            assert again.json()["comment_id"] == first["comment_id"] and again.json()["duplicate"]
            note = await reader.wait_for(lambda m: m.get("type") == "task.commented"
                                         and m["data"]["comment_id"] == first["comment_id"], timeout=30)
            assert "两袋" in note["data"]["note"] and note["data"]["media"] == body["media"]
            assert phone not in str(note)
            more = await reader.all_within(3, lambda m: m.get("type") == "task.commented"
                                           and m["data"]["comment_id"] == first["comment_id"])
            assert len(more) == 1
        # Another resident cannot comment on it: the same 404 as no case.
        foreign = await stranger.post(f"/api/v1/resident/cases/{case_no}/comments", headers=PAGE,
                                      json={**body, "client_id": "c-foreign"})
        assert foreign.status_code == 404


async def _state_is(pool, case_no: str, state: str) -> bool:
    return await pool.fetchval("SELECT state FROM cases WHERE case_no = $1", case_no) == state

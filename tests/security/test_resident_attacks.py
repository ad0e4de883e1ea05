"""Attacks on the resident page's doors (/my/), on the real services (the e2e `street` fixture): each must fail.

Guessing a code, asking codes without end, reading a code from the logs or the database, reading or reporting as
another resident, a forged, expired or foreign survey link, and a second answer to one survey.
"""
from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from services.notify.handlers import survey_link
from shared.residents import survey_token
from tests.e2e.conftest import mail_sink, sms_gateway, street  # noqa: F401 (the fixtures)
from tests.photos import phone_jpeg
from tests.support import eventually

pytestmark = pytest.mark.e2e

POINT = {"lon": 117.575168, "lat": 34.871845}
PAGE = {"X-Requested-With": "wangge"}


def a_phone() -> str:
    return f"139{uuid.uuid4().int % 10 ** 8:08d}"


def at(service: Any, address: str = "203.0.113.7", cookies: dict | None = None) -> httpx.AsyncClient:
    """A client of one service from `address` (the trusted loopback proxy's X-Forwarded-For, as nginx sends it)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://w", timeout=20,
                             headers={"X-Forwarded-For": address}, cookies=cookies)


async def code_of(street: Any, phone: str) -> str:
    async def found() -> str | None:
        for message in reversed(street.sms_sink.state.sink.messages):
            if message["to"] == phone and (m := re.search(r"验证码是(\d{6})", message["text"])):
                return m[1]
        return None
    return await eventually(found, 15, "the code SMS")


async def proven(street: Any, phone: str, address: str = "203.0.113.7") -> str:
    """A resident session's cookie value for this phone."""
    async with at(street.notify, address) as notify:
        assert (await notify.post("/api/v1/resident/codes", json={"phone": phone})).status_code == 202
        answer = await notify.post("/api/v1/resident/sessions", json={"phone": phone, "code": await code_of(street, phone)})
        assert answer.status_code == 200, answer.text
        return answer.cookies["wangge_session"]


async def test_guessing_a_code_is_stopped_and_the_code_is_never_logged_nor_stored(street, caplog):
    phone = a_phone()
    caplog.set_level(logging.DEBUG)
    async with at(street.notify) as notify:
        assert (await notify.post("/api/v1/resident/codes", json={"phone": phone})).status_code == 202
        code = await code_of(street, phone)
        wrong = f"{(int(code) + 1) % 10 ** 6:06d}"
        for _ in range(5):
            answer = await notify.post("/api/v1/resident/sessions", json={"phone": phone, "code": wrong})
            assert answer.status_code == 401 and "验证码错误" in answer.json()["detail"]
        # Five wrong tries void the code: even the right one no longer opens a session.
        voided = await notify.post("/api/v1/resident/sessions", json={"phone": phone, "code": code})
        assert voided.status_code == 401 and "wangge_session" not in voided.cookies
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert code not in logged and phone not in logged
    stored = await street.notify.runtime.pool.fetch("SELECT code_hash FROM resident_codes WHERE phone_norm = $1", phone)
    assert stored and all(code not in r["code_hash"] for r in stored)


async def test_one_address_guessing_over_many_phones_is_locked_out(street):
    async with at(street.notify, "198.51.100.9") as notify:
        for n in range(20):
            answer = await notify.post("/api/v1/resident/sessions", json={"phone": a_phone(), "code": "000000"})
            assert answer.status_code == 401, (n, answer.text)
        locked = await notify.post("/api/v1/resident/sessions", json={"phone": a_phone(), "code": "000000"})
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    # Another address is not locked out by it.
    async with at(street.notify, "198.51.100.10") as other:
        assert (await other.post("/api/v1/resident/sessions", json={"phone": a_phone(), "code": "000000"})).status_code == 401


async def test_codes_are_limited_per_phone_and_per_address(street):
    phone = a_phone()
    async with at(street.notify, "192.0.2.1") as notify:
        for _ in range(5):
            assert (await notify.post("/api/v1/resident/codes", json={"phone": phone})).status_code == 202
        sixth = await notify.post("/api/v1/resident/codes", json={"phone": phone})
        assert sixth.status_code == 429 and "Retry-After" in sixth.headers
    # The same phone from elsewhere is still limited (the phone's owner is not flooded with SMS).
    async with at(street.notify, "192.0.2.2") as elsewhere:
        assert (await elsewhere.post("/api/v1/resident/codes", json={"phone": phone})).status_code == 429
        # Not a mobile: refused with the reason, not a 500.
        bad = await elsewhere.post("/api/v1/resident/codes", json={"phone": "0632-3311234"})
        assert bad.status_code == 422 and "手机号码" in bad.json()["detail"]
        # A form post (text/plain, as another site could make a browser send) is refused.
        form = await elsewhere.post("/api/v1/resident/codes", content=b'{"phone": "13900001111"}',
                                    headers={"Content-Type": "text/plain"})
        assert form.status_code in (415, 422)


async def test_a_resident_cannot_read_or_report_as_another(street):
    alice, bob = a_phone(), a_phone()
    alice_cookie = await proven(street, alice)
    bob_cookie = await proven(street, bob, "203.0.113.8")
    async with at(street.intake, cookies={"wangge_session": alice_cookie}) as intake:
        photo = await intake.post("/api/v1/media", files={"file": ("a.jpg", phone_jpeg(), "image/jpeg")}, headers=PAGE)
        assert photo.status_code == 201, photo.text
        made = await intake.post("/api/v1/reports", headers=PAGE, json={
            "source": "web", "external_id": f"x-{uuid.uuid4().hex[:8]}", "category": "CM04", "description": "路灯不亮",
            "location": POINT, "reporter": {"phone": alice}, "media": [photo.json()["url"]],
            "observed_at": datetime.now(timezone.utc).isoformat()})
        assert made.status_code == 201, made.text
    case_no = made.json()["case_no"]
    async with at(street.notify, cookies={"wangge_session": alice_cookie}) as notify:
        await eventually(lambda: _lists(notify, case_no), 30, "alice's case on her list")
    async with at(street.notify, cookies={"wangge_session": bob_cookie}) as notify:
        mine = await notify.get("/api/v1/resident/cases")
        assert mine.status_code == 200 and case_no not in mine.text and alice not in mine.text
    async with at(street.intake, cookies={"wangge_session": bob_cookie}) as intake:
        # Bob cannot report as Alice's phone (her replies would go to her), nor as source hotline.
        posing = await intake.post("/api/v1/reports", headers=PAGE, json={
            "source": "web", "external_id": "x-pose", "category": "CM04", "description": "冒用",
            "location": POINT, "reporter": {"phone": alice}, "observed_at": datetime.now(timezone.utc).isoformat()})
        assert posing.status_code == 403 and "已验证的手机号" in posing.json()["detail"]
        hotline = await intake.post("/api/v1/reports", headers=PAGE, json={
            "source": "hotline", "external_id": "x-hot", "category": "CM04", "description": "冒用",
            "location": POINT, "reporter": {"phone": bob}, "observed_at": datetime.now(timezone.utc).isoformat()})
        assert hotline.status_code == 403
        # …nor see Alice's photo.
        assert (await intake.get(photo.json()["url"])).status_code == 404
    async with at(street.supervision, cookies={"wangge_session": bob_cookie}) as supervision:
        # Nor any staff view: cases, tasks.
        assert (await supervision.get("/api/v1/cases")).status_code == 403
        assert (await supervision.get(f"/api/v1/cases/{case_no}")).status_code == 403
        assert (await supervision.get("/api/v1/tasks")).status_code == 403


async def _lists(notify: httpx.AsyncClient, case_no: str) -> bool:
    return case_no in (await notify.get("/api/v1/resident/cases")).text


async def test_forged_expired_and_foreign_survey_links_are_refused_and_one_answer_counts(street):
    pool = street.notify.runtime.pool
    survey_id = str(uuid.uuid4())
    closes = datetime.now(timezone.utc) + timedelta(days=2)
    await pool.execute("INSERT INTO case_status (case_id, case_no, state, event_id, changed_at) "
                       "VALUES ('c-atk', '20261206-9002', 'closed', 'e-atk', now())")
    await pool.execute("INSERT INTO surveys (survey_id, case_id, case_no, source_event_id, opened_at, closes_at) "
                       "VALUES ($1::uuid, 'c-atk', '20261206-9002', 'e-atk', now(), $2)", survey_id, closes)
    good = survey_link(street.settings, survey_id, closes).split("?s=", 1)[1]
    body, sig = good.split(".")
    forged_sig = f"{body}.{'A' * len(sig)}"
    # The survey id and window changed without the key: the old signature no longer fits.
    later = survey_token(b"x", survey_id, closes + timedelta(days=30)).split(".")[0] + "." + sig
    foreign = survey_token(b"another street's key", survey_id, closes)
    expired = survey_token(street.settings.resident_secret(), survey_id, datetime.now(timezone.utc) - timedelta(minutes=1))
    async with at(street.notify) as notify:
        for token in (forged_sig, later, foreign, expired, "garbage.token"):
            answer = await notify.post(f"/api/v1/resident/surveys/{token}", json={"verdict": "unsatisfied"})
            assert answer.status_code in (403, 422), (token, answer.text)
            assert answer.status_code != 403 or "评价链接" in answer.json()["detail"]
        assert (await notify.get(f"/api/v1/resident/surveys/{expired}")).json()["detail"].endswith("(评价链接已过期)")
        first = await notify.post(f"/api/v1/resident/surveys/{good}", json={"verdict": "basically_satisfied"})
        assert first.status_code == 200 and first.json()["answered"]
        second = await notify.post(f"/api/v1/resident/surveys/{good}", json={"verdict": "unsatisfied"})
        assert second.status_code == 409
    assert await pool.fetchval("SELECT verdict FROM surveys WHERE survey_id = $1::uuid", survey_id) == "basically_satisfied"

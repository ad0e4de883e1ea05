"""Who may follow and comment on a case from the resident page (/my/), attacked, on the real services: a resident
comments on a case reported — by the hotline, a terminal, Open311 — with the phone or the e-mail their one-time code
proved, and on the case a report of theirs was merged into; nobody else (another's case and an unknown one are the
same 404), not on a held report, not after the case's personal data was erased. One who reported with only an e-mail
proves it with a code sent by e-mail, under the SMS code's limits (per address, per client, five tries, expiry),
never logged nor stored in clear, and sees their own cases only — not every case whose contact has no phone.
"""
from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from shared.contracts.cases import CasePersonalDataErased
from shared.topics import Topics
from tests.e2e.conftest import mail_sink, sms_gateway, street  # noqa: F401 (the fixtures)
from tests.security.test_resident_attacks import PAGE, POINT, a_phone, at, proven
from tests.support import eventually, grant, publish

pytestmark = pytest.mark.e2e

HOTLINE, OPERATOR, PORTAL = "rf-hotline", "rf-operator", "rf-portal"


def an_email() -> str:
    return f"zhang.{uuid.uuid4().hex[:8]}@example.cn"


async def staff(street: Any) -> None:
    services = (street.intake, street.routing, street.supervision, street.notify)
    await grant(street.settings, *services, token=HOTLINE, name="12345热线", role="hotline")
    await grant(street.settings, *services, token=OPERATOR, name="值班员", role="operator")
    await grant(street.settings, *services, token=PORTAL, name="FixMyStreet", role="hotline")


async def hotline_report(street: Any, *, phone: str | None = None, held: bool = False) -> str:
    """A case the 12345 hotline took for a resident with this phone (held: no place the street knows)."""
    place = {"location": None, "address": "不知道哪里"} if held else {"location": POINT, "address": None}
    async with at(street.intake) as intake:
        made = await intake.post("/api/v1/reports", headers={"Authorization": f"Bearer {HOTLINE}"}, json={
            "source": "hotline", "external_id": f"12345-{uuid.uuid4().hex[:10]}", "category": "CM04",
            "description": "路灯不亮", **place, "reporter": {"name": "王女士", "phone": phone}, "media": [],
            "observed_at": datetime.now(timezone.utc).isoformat()})
    assert made.status_code == 201, made.text
    return made.json()["case_no"]


async def comment(street: Any, cookie: str | None, case_no: str, text: str = "还没修好") -> httpx.Response:
    async with at(street.intake, cookies={"wangge_session": cookie} if cookie else None) as intake:
        return await intake.post(f"/api/v1/resident/cases/{case_no}/comments", headers=PAGE,
                                 json={"text": text, "client_id": f"c-{uuid.uuid4().hex[:8]}"})


def _detail(answer: httpx.Response, case_no: str) -> tuple[int, str]:
    return answer.status_code, answer.json()["detail"].replace(case_no, "<no>")


async def mail_code(street: Any, address: str) -> str:
    async def found() -> str | None:
        for message in reversed(street.mail.to(address)):
            if m := re.search(r"验证码是(\d{6})", message["text"]):
                return m[1]
        return None
    return await eventually(found, 15, f"the code e-mailed to {address}")


async def proven_email(street: Any, address: str, client: str = "203.0.113.20") -> str:
    """A resident session's cookie for this e-mail address (the code read from the local SMTP server)."""
    async with at(street.notify, client) as notify:
        asked = await notify.post("/api/v1/resident/codes", json={"email": address})
        assert asked.status_code == 202, asked.text
        signed = await notify.post("/api/v1/resident/sessions",
                                   json={"email": address, "code": await mail_code(street, address)})
        assert signed.status_code == 200, signed.text
        return signed.cookies["wangge_session"]


async def test_a_resident_comments_on_the_case_the_hotline_took_with_their_phone_and_nobody_else_does(street):
    await staff(street)
    alice, bob = a_phone(), a_phone()
    # The hotline wrote the number its own way: the proven mobile is the same resident.
    case_no = await hotline_report(street, phone=f"+86 {alice[:3]} {alice[3:7]}-{alice[7:]}")
    held = await hotline_report(street, phone=alice, held=True)
    alice_cookie = await proven(street, alice)
    bob_cookie = await proven(street, bob, "203.0.113.8")

    mine = await comment(street, alice_cookie, case_no, "灯还是不亮")
    assert mine.status_code == 201, mine.text
    kept = await street.intake.runtime.pool.fetchval("SELECT text FROM case_comments WHERE case_no = $1", case_no)
    assert kept == "灯还是不亮"

    # Another resident, an unknown case, a held report (not yet a case): the same 404; no cookie at all: 401.
    foreign = await comment(street, bob_cookie, case_no)
    unknown = await comment(street, bob_cookie, "19990101-0001")
    not_yet = await comment(street, alice_cookie, held)
    assert _detail(foreign, case_no) == _detail(unknown, "19990101-0001") == _detail(not_yet, held)
    assert foreign.status_code == 404 and alice not in foreign.text
    assert (await comment(street, None, case_no)).status_code == 401
    assert await street.intake.runtime.pool.fetchval(
        "SELECT count(*) FROM case_comments WHERE case_no = ANY($1)", [case_no, held]) == 1
    # Intake keeps who may follow it as opaque ids only: neither the phone nor its digits.
    keys = await street.intake.runtime.pool.fetchval("SELECT resident_keys::text FROM reports WHERE case_no = $1",
                                                      case_no)
    assert keys.count("r-") == 1 and alice not in keys

    # Once notify erased the case's residents' data, nobody follows it from /my/ any more.
    case_id = await street.intake.runtime.pool.fetchval("SELECT case_id::text FROM reports WHERE case_no = $1", case_no)
    erased = CasePersonalDataErased(case_no=case_no, erased_at=datetime.now(timezone.utc), fields=["name", "phone"])
    await publish(street.settings.kafka_bootstrap, Topics(street.settings.topic_prefix).cases,
                  erased.envelope(source="notify", case_id=case_id), key=case_id)

    async def forgotten() -> bool:
        return await street.intake.runtime.pool.fetchval(
            "SELECT resident_keys = '{}' FROM reports WHERE case_no = $1", case_no)
    await eventually(forgotten, 30, "intake forgets who reported the erased case")
    assert _detail(await comment(street, alice_cookie, case_no), case_no) == _detail(unknown, "19990101-0001")


async def test_the_reporter_of_a_merged_duplicate_comments_on_the_case_it_follows(street):
    await staff(street)
    carol, dave = a_phone(), a_phone()
    target = await hotline_report(street, phone=a_phone())
    duplicate = await hotline_report(street, phone=carol, held=True)
    async with at(street.intake) as intake:
        merged = await intake.post(f"/api/v1/cases/{duplicate}/merge", json={"into": target},
                                   headers={"Authorization": f"Bearer {OPERATOR}"})
    assert merged.status_code == 200, merged.text
    carol_cookie = await proven(street, carol)
    dave_cookie = await proven(street, dave, "203.0.113.9")
    assert (await comment(street, carol_cookie, target, "我反映的也是这个")).status_code == 201
    to_duplicate = await comment(street, carol_cookie, duplicate)
    assert to_duplicate.status_code == 409 and target in to_duplicate.json()["detail"]
    assert (await comment(street, dave_cookie, target)).status_code == 404

    # Her list names her report once, though notify knows her phone both as its reporter and as a follower.
    async def listed() -> list[str] | None:
        async with at(street.notify, cookies={"wangge_session": carol_cookie}) as notify:
            cases = (await notify.get("/api/v1/resident/cases")).json()["cases"]
        follows = await street.notify.runtime.pool.fetchval(
            "SELECT count(*) FROM followers WHERE follower_case_no = $1", duplicate)
        return [c["case_no"] for c in cases] if follows else None
    assert (await eventually(listed, 30, "notify knows her as the merged report's follower")).count(duplicate) == 1


async def test_one_who_reported_with_only_an_email_proves_it_by_email_and_sees_only_their_own_cases(street):
    await staff(street)
    erin, frank = an_email(), an_email()

    async def open311(email: str) -> str:
        async with at(street.intake) as intake:
            posted = await intake.post("/open311/v2/requests.json", data={
                "api_key": PORTAL, "service_code": "CM04", "lat": str(POINT["lat"]), "long": str(POINT["lon"]),
                "description": "垃圾箱坏了", "email": email})
        assert posted.status_code == 201, posted.text
        return posted.json()[0]["service_request_id"]
    # Erin wrote her address with capitals; Frank's case has an e-mail-only contact too (an empty phone).
    hers, his = await open311(erin.replace("zhang", "Zhang").replace("example", "Example")), await open311(frank)
    erin_cookie = await proven_email(street, erin)

    async with at(street.notify, cookies={"wangge_session": erin_cookie}) as notify:
        me = (await notify.get("/api/v1/resident/sessions")).json()
        assert me["phone"] is None and me["email"] == erin and me["email_masked"] == "z***@example.cn"

        async def acknowledged() -> dict | None:
            cases = (await notify.get("/api/v1/resident/cases")).json()["cases"]
            return cases if any(c["case_no"] == hers and c["replies"] for c in cases) else None
        cases = await eventually(acknowledged, 40, "her case with its e-mailed acknowledgement")
    assert [c["case_no"] for c in cases] == [hers] and his not in str(cases) and frank not in str(cases)
    assert "已受理" in cases[0]["replies"][0]["text"]
    assert (await comment(street, erin_cookie, hers, "箱子盖也没了")).status_code == 201
    assert (await comment(street, erin_cookie, his)).status_code == 404


async def test_codes_by_email_have_the_sms_codes_limits_and_are_never_logged_nor_stored(street, caplog):
    caplog.set_level(logging.DEBUG)
    address = an_email()
    async with at(street.notify, "192.0.2.31") as notify:
        assert (await notify.post("/api/v1/resident/codes", json={"email": address})).status_code == 202
        code = await mail_code(street, address)
        wrong = f"{(int(code) + 1) % 10 ** 6:06d}"
        for _ in range(5):
            answer = await notify.post("/api/v1/resident/sessions", json={"email": address, "code": wrong})
            assert answer.status_code == 401 and "验证码错误" in answer.json()["detail"]
        voided = await notify.post("/api/v1/resident/sessions", json={"email": address, "code": code})
        assert voided.status_code == 401 and "wangge_session" not in voided.cookies
        # A code proves the address it went to, not a phone (nor another address).
        stolen = await notify.post("/api/v1/resident/sessions", json={"phone": a_phone(), "code": code})
        assert stolen.status_code == 401
        for _ in range(4):
            assert (await notify.post("/api/v1/resident/codes", json={"email": address})).status_code == 202
        sixth = await notify.post("/api/v1/resident/codes", json={"email": address.upper()})  # the same address
        assert sixth.status_code == 429 and "Retry-After" in sixth.headers
        for bad in ({"email": "not-an-address"}, {"email": address, "phone": a_phone()}, {}):
            refused = await notify.post("/api/v1/resident/codes", json=bad)
            assert refused.status_code == 422, (bad, refused.text)
    # A code that has expired opens nothing.
    later = an_email()
    async with at(street.notify, "192.0.2.32") as notify:
        assert (await notify.post("/api/v1/resident/codes", json={"email": later})).status_code == 202
        late_code = await mail_code(street, later)
        await street.notify.runtime.pool.execute(
            "UPDATE resident_codes SET expires_at = now() - interval '1 second' WHERE email_norm = $1", later)
        expired = await notify.post("/api/v1/resident/sessions", json={"email": later, "code": late_code})
        assert expired.status_code == 401
    # One client address asking codes for many addresses is limited too (20 an hour over phones and addresses).
    async with at(street.notify, "192.0.2.33") as notify:
        answers = [(await notify.post("/api/v1/resident/codes", json={"email": an_email()})).status_code
                   for _ in range(21)]
    assert answers[:20] == [202] * 20 and answers[20] == 429
    # wangge's own lines (aiosmtpd's "mail.log" is the test's SMTP server: the outside mail system, which reads mail)
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail.log"))
    assert code not in logged and address not in logged and late_code not in logged
    stored = await street.notify.runtime.pool.fetch(
        "SELECT code_hash, phone_norm FROM resident_codes WHERE email_norm = $1", address)
    assert stored and all(code not in r["code_hash"] and r["phone_norm"] is None for r in stored)

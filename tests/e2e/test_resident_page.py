"""The resident's page (/my/) in Debian's headless Chromium at a phone's size (360×780), behind the front door, on
the real services, as a new user would: the street's recent cases on the public map; 随手拍 after proving the phone
with the code the local SMS sink received, with a photo and the phone's position; their case followed with its
reply; a comment with a photo reaching the owner's task; the case resolved, checked and closed by the street; the survey answered from the link in the survey SMS,
once; and one who reported through Open311 with only an e-mail signing in with the code the e-mail brought, following
and commenting. Screenshots go to .local/artifacts/screenshots/ (docs/screenshots/my-*.png are copies for the README)."""
from __future__ import annotations

import asyncio
import re
import uuid

import httpx
import pytest

from tests.e2e.frontdoor import front_door  # noqa: F401  (fixture)
from tests.e2e.test_phone_pages import (IN_W001_GRID, OPERATOR, OWNER_TOKEN, attach, case_state, cdp, click, client,
                                        jpeg, people, phone, shot, type_into)  # noqa: F401  (fixtures)
from tests.e2e.test_work_screen import css, text_in
from tests.support import grant

pytestmark = pytest.mark.e2e


async def sink_text(street, phone_number: str, pattern: str, timeout: float = 30) -> re.Match:
    """The first SMS to this phone whose text matches `pattern` (the local SMS sink's record)."""
    async def poll() -> re.Match:
        while True:
            for message in street.sms_sink.state.sink.messages:
                if message["to"] == phone_number and (found := re.search(pattern, message["text"])):
                    return found
            await asyncio.sleep(0.2)
    return await asyncio.wait_for(poll(), timeout)


async def test_a_resident_reports_follows_and_rates_a_case_from_a_phone(people, front_door, phone, tmp_path):
    street = people
    number = f"139{uuid.uuid4().int % 10 ** 8:08d}"
    await cdp(phone, "Browser.grantPermissions", {"origin": front_door.url, "permissions": ["geolocation"]})
    await cdp(phone, "Emulation.setGeolocationOverride",
              {"latitude": IN_W001_GRID["lat"], "longitude": IN_W001_GRID["lon"], "accuracy": 10})

    # Anyone: the street's recent cases on the map, before any sign-in.
    await phone.get(f"{front_door.url}/my/")
    await phone.wait_for(css('#public-list[data-ready="1"]'), message="the public list")
    await phone.wait_for(css('#public-map[data-ready="1"]'), message="the public map")
    await shot(phone, "my-public", "my-public.png")

    # 随手拍: the phone is proven first, with the code the SMS brought.
    await click(phone, "#tab-report")
    await type_into(phone, "#my-phone", number)
    await click(phone, "#ask-code")
    await phone.wait_for(text_in("#notice", "验证码已发送"), message="the code sent")
    code = (await sink_text(street, number, r"验证码是(\d{6})"))[1]
    await type_into(phone, "#my-code", code)
    await click(phone, "#prove")
    await phone.wait_for(css("#my-report"), message="the report form once the phone is proven")
    await phone.wait_for(text_in("#who", number[:3] + "****" + number[-4:]), message="the masked phone on top")
    await attach(phone, 'input[name="photos"]', jpeg(tmp_path / "rubbish.jpg", (120, 160, 60)))
    await type_into(phone, "#my-description", "楼下垃圾箱满了，垃圾堆到路边")
    await phone.wait_for(css('#my-suggestions .chip[data-code="CM04"]'), message="the suggested category")
    await click(phone, "#locate")
    await phone.wait_for(css("#point[data-lon]"), message="the phone's position")
    await phone.wait_for(css('#my-map[data-ready="1"]'), message="the map to tap instead")
    await shot(phone, "my-report", "my-report.png")
    await click(phone, "#my-send")
    await phone.wait_for(text_in("#notice", "已上报，案件编号"), timeout=30, message="the report answered")
    case_no = re.search(r"\d{8}-\d{4}", await phone.script("return document.getElementById('notice').textContent"))[0]
    case = await case_state(street, case_no, "dispatched")
    assert case["category"] == "CM04" and case["source"] == "web"

    # Followed: the case on "my cases" with its acknowledgement, without a reload (the list refreshes itself).
    card = f'#my-cases li.case[data-case-no="{case_no}"]'
    await phone.wait_for(text_in(f"{card} ol.replies", "已受理"), timeout=40, message="the case and its reply")
    await shot(phone, "my-cases", "my-cases.png")

    # 补充说明 with a photo on the open case: it reaches the holder (环卫所) as a note.
    await click(phone, f"{card} details summary")
    await type_into(phone, f'{card} textarea[name="comment"]', "垃圾还在，又多了两袋")
    await attach(phone, f'{card} input[name="comment-photos"]', jpeg(tmp_path / "more.jpg", (90, 60, 30)))
    await click(phone, f'{card} [data-action="comment"]')
    await phone.wait_for(text_in("#notice", "补充说明已送达"), timeout=30, message="the comment taken")
    await shot(phone, "my-comment", "my-comment.png")
    async with client(street.supervision, OWNER_TOKEN) as owner:
        async def noted() -> bool:
            task = await owner.get(f"/api/v1/tasks/{case_no}")
            return task.status_code == 200 and "又多了两袋" in task.text
        async def poll() -> None:
            while not await noted():
                await asyncio.sleep(0.3)
        await asyncio.wait_for(poll(), 30)

    # The street handles it: signed, resolved, checked on the spot, closed.
    async with client(street.supervision, OWNER_TOKEN) as owner:
        for update in ({"type": "task.accepted"}, {"type": "task.resolved", "result": "已清运", "media": []}):
            answer = await owner.post(f"/api/v1/tasks/{case_no}/updates", json=update)
            assert answer.status_code == 200, answer.text
    await case_state(street, case_no, "resolved")
    async with client(street.supervision, OPERATOR) as operator:
        checked = await operator.post(f"/api/v1/cases/{case_no}/check", json={"passed": True, "note": "已核实"})
        assert checked.status_code in (200, 202), checked.text
    await case_state(street, case_no, "closed")

    # The survey SMS carries its signed link: opened on the phone, no number typed, answered once.
    link = (await sink_text(street, number, r"https?://[^/\s]+(/my/\?s=[A-Za-z0-9_.-]+)"))[1]
    await phone.get(front_door.url + link)
    await phone.wait_for(css('#link-survey[data-ready="1"] [data-verdict="satisfied"]'), message="the linked survey")
    await click(phone, '#link-survey [data-verdict="satisfied"]')
    await phone.wait_for(text_in("#link-answered", "满意"), message="the answer taken")
    await shot(phone, "my-survey", "my-survey.png")
    pool = street.notify.runtime.pool
    assert await pool.fetchval("SELECT verdict FROM surveys WHERE case_no = $1", case_no) == "satisfied"
    # Once: the link shows it answered, and a second answer is refused.
    await phone.get(front_door.url + link)
    await phone.wait_for(text_in("#link-answered", "已评价"), message="answered already")


async def mail_text(street, address: str, pattern: str, timeout: float = 30) -> re.Match:
    """The first e-mail to this address whose text matches `pattern` (the local SMTP server's record)."""
    async def poll() -> re.Match:
        while True:
            for message in street.mail.to(address):
                if found := re.search(pattern, message["text"]):
                    return found
            await asyncio.sleep(0.2)
    return await asyncio.wait_for(poll(), timeout)


async def test_a_resident_who_reported_with_only_an_email_signs_in_by_email_follows_and_comments(people, front_door,
                                                                                               phone):
    """One who reported through an Open311 client with only an e-mail (FixMyStreet sends its user's address) opens
    我的案件 on a phone: no phone to prove, so the e-mail is proven with the code the e-mail brought; their case is
    there with the e-mailed acknowledgement, and their comment reaches the case."""
    street = people
    address = f"li.{uuid.uuid4().hex[:8]}@example.cn"
    await grant(street.settings, street.intake, token="page-portal", name="FixMyStreet", role="hotline")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=street.intake.app), base_url="http://w",
                                 timeout=20) as intake:
        posted = await asyncio.wait_for(intake.post("/open311/v2/requests.json", data={
            "api_key": "page-portal", "service_code": "CM04", "lat": str(IN_W001_GRID["lat"]),
            "long": str(IN_W001_GRID["lon"]), "description": "小区门口垃圾箱盖子坏了", "email": address}), 20)
    assert posted.status_code == 201, posted.text
    case_no = posted.json()[0]["service_request_id"]

    await phone.get(f"{front_door.url}/my/#mine")
    await phone.wait_for(css("#prove-form"), message="the sign-in form on 我的案件")
    await click(phone, "#use-email")
    await phone.wait_for(text_in("#prove-form h3", "验证电子邮箱"), message="the form switched to e-mail")
    await type_into(phone, "#my-email", address)
    await click(phone, "#ask-code")
    await phone.wait_for(text_in("#notice", "验证码已发送至邮箱"), message="the code e-mailed")
    code = (await mail_text(street, address, r"验证码是(\d{6})"))[1]
    await type_into(phone, "#my-code", code)
    await shot(phone, "my-email-code")
    await click(phone, "#prove")
    await phone.wait_for(text_in("#who", "l***@example.cn"), message="the masked address on top")

    card = f'#my-cases li.case[data-case-no="{case_no}"]'
    await phone.wait_for(text_in(f"{card} ol.replies", "已受理"), timeout=40, message="the case and its e-mailed reply")
    await click(phone, f"{card} details summary")
    await type_into(phone, f'{card} textarea[name="comment"]', "盖子掉在地上了")
    await click(phone, f'{card} [data-action="comment"]')
    await phone.wait_for(text_in("#notice", "补充说明已送达"), timeout=30, message="the comment taken")
    await shot(phone, "my-email-cases", "my-email.png")
    assert await street.intake.runtime.pool.fetchval(
        "SELECT text FROM case_comments WHERE case_no = $1", case_no) == "盖子掉在地上了"
    # The page is a phone's: nothing wider than its screen.
    assert await phone.script("return document.documentElement.scrollWidth") <= 360 + 1

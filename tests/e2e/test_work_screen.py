"""The operator's work screen in a real headless Chromium behind the front door: signing in with a username and
password (a wrong password is told so; the session is an HttpOnly cookie the page never sees), classifying a held report from its queue with the suggested category, the task
reaching the owner's topic, re-dispatching it from the case page, and locating a report whose address
the registry does not know. Screenshots go to .local/artifacts/screenshots/."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

from shared.topics import ensure_topics
from tests.e2e.frontdoor import browser, front_door  # noqa: F401  (fixtures)
from tests.support import TopicReader, grant

pytestmark = pytest.mark.e2e

OPERATOR = "ws-browser-operator"  # a bearer token: what the tests' own HTTP calls use
OPERATOR_USER, OPERATOR_PASSWORD = "ws-operator", "ws-operator-password"  # the person at the work screen
HOTLINE = "ws-browser-hotline"
POINT = {"lon": 117.575168, "lat": 34.871845}  # 市社家宿舍, unit grid 3704020010010201 (龙头社区)
UNIT_GRID = "3704020010010201"
STREET_ZONE = ZoneInfo("Asia/Shanghai")


def report(**fields) -> dict:
    body = {"source": "hotline", "external_id": f"wsb-{uuid.uuid4().hex[:8]}", "category": None,
            "description": "3号楼前垃圾箱损坏，垃圾外溢", "location": POINT, "address": None,
            "reporter": {"name": "周先生", "phone": "13900006655"}, "coordinator": None,
            "media": [], "observed_at": "2026-11-27T09:00:00+08:00"}
    body.update(fields)
    return body


async def submit(street, body: dict) -> str:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=street.intake.app), base_url="http://intake",
                                 headers={"Authorization": f"Bearer {HOTLINE}"}, timeout=15) as http:
        answer = await asyncio.wait_for(http.post("/api/v1/reports", json=body), 15)
    assert answer.status_code == 201 and answer.json()["state"] == "reported", answer.text
    return answer.json()["case_no"]


async def state_of(street, case_no: str, wanted: str) -> None:
    """Wait until supervision has the case in `wanted` state (the screen reads supervision)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=street.supervision.app), base_url="http://s",
                                 headers={"Authorization": f"Bearer {OPERATOR}"}, timeout=15) as http:
        async def poll() -> None:
            while (await http.get(f"/api/v1/cases/{case_no}")).json().get("state") != wanted:
                await asyncio.sleep(0.2)
        await asyncio.wait_for(poll(), 30)


def redrawn_is_false(condition):
    """A condition that reads an element the page has just redrawn is simply not met yet: look again."""
    def check(driver):
        try:
            return condition(driver)
        except StaleElementReferenceException:
            return False
    return check


def css(selector: str):
    """The first displayed element matching the selector, or False."""
    return redrawn_is_false(lambda d: next((e for e in d.find_elements(By.CSS_SELECTOR, selector)[:1] if e.is_displayed()), False))


def text_in(selector: str, words: str):
    """Whether an element matching the selector holds the words."""
    return redrawn_is_false(lambda d: any(words in e.text for e in d.find_elements(By.CSS_SELECTOR, selector)))


@pytest.fixture
async def operator_street(street):
    services = (street.intake, street.routing, street.supervision, street.notify)
    await grant(street.settings, *services, token=OPERATOR, name="指挥中心受理员", role="operator")
    await grant(street.settings, street.intake, token=HOTLINE, name="12345", role="hotline")
    await street.supervision.app.state.people.add(username=OPERATOR_USER, display_name="值班员 王芳", kind="operator",
                                                  password=OPERATOR_PASSWORD)
    topics = street.intake.runtime.topics
    await ensure_topics(street.settings.kafka_bootstrap, [topics.for_owner("huanwei"), topics.for_owner("chengguan")])
    return street


async def fill_sign_in(browser, username: str, password: str) -> None:
    """Type into the sign-in form of common/session.js and press 登录."""
    user = await browser.wait_for(css("#wg-username"), message="the sign-in form")
    await browser.run(user.clear)
    await browser.run(user.send_keys, username)
    await browser.run((await browser.wait_for(css("#wg-password"))).send_keys, password)
    await browser.run((await browser.wait_for(css("#wg-sign-in"))).click)


async def sign_in(browser, url: str) -> None:
    await browser.get(url + "/")
    await fill_sign_in(browser, OPERATOR_USER, "not-the-password")
    await browser.wait_for(text_in("#wg-sign-in-error", "用户名或密码错误"), message="a wrong password is told so")
    await browser.screenshot("wrong-password")
    await fill_sign_in(browser, OPERATOR_USER, OPERATOR_PASSWORD)
    await browser.wait_for(css("body[data-ready] #queues"), message="the work screen after signing in")


async def test_an_operator_classifies_a_held_report_and_dispatches_it(operator_street, front_door, browser):
    street = operator_street
    topics = street.intake.runtime.topics
    # Two more held reports, so the queue looks like a morning's (and the one we work is found among them).
    for words in ("小区门口路灯不亮好几天了", "下水道堵塞，污水漫到路面"):
        await submit(street, report(description=words))
    case_no = await submit(street, report())
    await state_of(street, case_no, "reported")
    async with TopicReader(street.settings.kafka_bootstrap, topics.tasks("huanwei"), topics.tasks("chengguan")) as tasks:
        await sign_in(browser, front_door.url)
        row = await browser.wait_for(css(f'#list tr[data-case="{case_no}"]'), message="the held report in its queue")
        await browser.run(row.click)
        chip = await browser.wait_for(css('[data-role="suggestions"] .chip.best[data-code="CM04"]'),
                                      message="垃圾箱损坏/暴露垃圾 suggested first")
        await browser.run(chip.click)
        assert await browser.script('return document.querySelector(\'select[name="category"]\').value') == "CM04"
        await browser.screenshot("held-report")
        await browser.run((await browser.wait_for(css('[data-action="classify"]'))).click)
        await browser.wait_for(text_in("#notice", "已立案"), message="the classification answered")

        assigned = await tasks.wait_for(lambda m: m["type"] == "task.assigned" and m["data"]["case_no"] == case_no, 30)
        assert assigned["_topic"] == topics.tasks("huanwei") and assigned["data"]["category"] == "CM04"
        assert assigned["data"]["unit_grid"] == UNIT_GRID

        # The case page, once supervision has the dispatch: 改派 to 城管 with a reason.
        await state_of(street, case_no, "dispatched")
        await browser.get(f"{front_door.url}/#/case/{case_no}")
        await browser.wait_for(css(f'article.case[data-case="{case_no}"][data-state="dispatched"]'),
                               message="the case page in state dispatched")
        owner = await browser.wait_for(css('select[name="owner"]'))
        await browser.run(lambda: Select(owner).select_by_value("chengguan"))
        reason = await browser.wait_for(css('input[name="reason"]'))
        await browser.run(reason.send_keys, "占道经营，转城管处理")
        await browser.run((await browser.wait_for(css('[data-action="dispatch"]'))).click)
        await browser.wait_for(text_in("#notice", "已派遣给"), message="the manual dispatch answered")
        moved = await tasks.wait_for(lambda m: m["type"] == "task.assigned" and m["data"]["case_no"] == case_no
                                     and m["_topic"] == topics.tasks("chengguan"), 30)
        assert moved["data"]["owner"] == "chengguan"
        recalled = await tasks.wait_for(lambda m: m["type"] == "task.recalled" and m["data"]["case_no"] == case_no, 30)
        assert recalled["_topic"] == topics.tasks("huanwei")
        await browser.wait_for(text_in("article.case ol.timeline", "派遣"), message="the timeline shows the dispatch")
        await browser.screenshot("case-page")

        # Search by the reporter's phone: notify matches it, the screen lists the case, the number never in full.
        search = await browser.wait_for(css("#search"))
        await browser.run(search.send_keys, "139 0000 6655")
        await browser.run((await browser.wait_for(css("#search-go"))).click)
        await browser.wait_for(css(f'#list tr[data-case="{case_no}"]'), message="the case found by its phone")
        page = await browser.script("return document.body.innerText + document.getElementById('search').value")
        assert "139****6655" in page and "13900006655" not in page.replace(" ", "")


async def test_an_operator_locates_a_report_the_address_registry_does_not_know(operator_street, front_door, browser):
    street = operator_street
    topics = street.intake.runtime.topics
    case_no = await submit(street, report(category="CM04", location=None, address="市社家宿舍北边那个垃圾站"))
    await state_of(street, case_no, "reported")
    async with TopicReader(street.settings.kafka_bootstrap, topics.tasks("huanwei")) as tasks:
        await sign_in(browser, front_door.url)
        await browser.run((await browser.wait_for(css(f'#list tr[data-case="{case_no}"]'))).click)
        await browser.wait_for(text_in("section.action", "市社家宿舍北边那个垃圾站"), message="the address as reported")
        # The street's unit grids drawn from routing's GET /api/v1/grids: click where the point is, as a person would.
        area = await browser.wait_for(css("#locate-map[data-ready]"), message="the map of the unit grids")

        def click_point() -> None:
            # Wholly in view first: WebDriver's offsets count from the centre of the element's visible part.
            dx, dy = browser.driver.execute_script(
                "arguments[2].scrollIntoView({block: 'center'});"
                " const at = window.wanggeLocateMap.toPixel(arguments[0], arguments[1]);"
                " const box = arguments[2].getBoundingClientRect();"
                " return [at.x - (box.left + box.width / 2), at.y - (box.top + box.height / 2)];",
                POINT["lon"], POINT["lat"], area)
            ActionChains(browser.driver).move_to_element_with_offset(area, int(dx), int(dy)).click().perform()

        await browser.run(click_point)
        await browser.wait_for(text_in('[data-role="picked"]', "经度"), message="the picked point")
        await browser.screenshot("locate-map")
        await browser.run((await browser.wait_for(css('[data-action="locate"]'))).click)
        await browser.wait_for(text_in("#notice", UNIT_GRID), message="the case located in its unit grid")
        assigned = await tasks.wait_for(lambda m: m["type"] == "task.assigned" and m["data"]["case_no"] == case_no, 30)
        assert assigned["data"]["unit_grid"] == UNIT_GRID


async def test_the_monday_report_page_lists_the_communitys_cases(operator_street, front_door, browser):
    street = operator_street
    case_no = await submit(street, report())  # held in 3704020010010201, 龙头社区: reported this week
    await state_of(street, case_no, "reported")
    year, week, _ = datetime.now(STREET_ZONE).isocalendar()
    await browser.get(f"{front_door.url}/report?community=370402001001&week={year}-W{week:02d}")
    await fill_sign_in(browser, OPERATOR_USER, OPERATOR_PASSWORD)  # the report asks who is there
    await browser.wait_for(css("body[data-ready] #report"), message="the weekly report")
    text = await browser.script("return document.getElementById('report').innerText")
    assert "龙头社区 周例会通报" in text and case_no in text
    await browser.screenshot("weekly-report")


async def owner_update(street, case_no: str, body: dict) -> None:
    """The owner's own system answers its task over HTTP (POST /api/v1/tasks/{no}/updates)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=street.supervision.app), base_url="http://s",
                                 headers={"Authorization": f"Bearer {OWNER}"}, timeout=15) as http:
        answer = await asyncio.wait_for(http.post(f"/api/v1/tasks/{case_no}/updates", json=body), 15)
    assert answer.status_code == 200, answer.text


async def open_from_queue(browser, queue: str, case_no: str) -> None:
    """Click a queue in the side bar, then the case's row in it."""
    await browser.run((await browser.wait_for(css(f'#queues a[data-queue="{queue}"]'))).click)
    await browser.run((await browser.wait_for(css(f'#list tr[data-case="{case_no}"]'),
                                              message=f"case {case_no} in queue {queue}")).click)
    await browser.wait_for(css(f'article.case[data-case="{case_no}"]'), message=f"the case page of {case_no}")


OWNER = "ws-browser-owner-huanwei"


async def test_an_operator_decides_an_extension_checks_a_resolved_case_and_redispatches_a_returned_one(
        operator_street, front_door, browser):
    street = operator_street
    topics = street.intake.runtime.topics
    await grant(street.settings, street.supervision, token=OWNER, name="环卫所", role="owner", owner_code="huanwei")
    extended, resolved, returned = [await submit_accepted(street) for _ in range(3)]
    for case_no in (extended, resolved, returned):
        await state_of(street, case_no, "dispatched")
    await owner_update(street, extended, {"type": "task.accepted"})
    until = (datetime.now(STREET_ZONE) + timedelta(days=10)).replace(hour=17, minute=30, second=0, microsecond=0)
    await owner_update(street, extended, {"type": "task.extension-requested", "until": until.isoformat(),
                                          "reason": "需要采购新垃圾箱"})
    await owner_update(street, resolved, {"type": "task.accepted"})
    await owner_update(street, resolved, {"type": "task.resolved", "result": "已更换垃圾箱",
                                          "media": ["https://img.example.org/ws/done.jpg"]})
    await owner_update(street, returned, {"type": "task.returned", "reason": "占道经营，不属于环卫所"})
    await state_of(street, resolved, "resolved")
    await state_of(street, returned, "returned")

    async with TopicReader(street.settings.kafka_bootstrap, topics.tasks("chengguan")) as chengguan:
        await sign_in(browser, front_door.url)

        await open_from_queue(browser, "extensions", extended)
        await browser.wait_for(text_in("section.action", "需要采购新垃圾箱"), message="the owner's reason")
        await browser.run((await browser.wait_for(css('[data-action="approve"]'))).click)
        await browser.wait_for(text_in("#notice", "延期已批准"), message="the extension approved")

        await open_from_queue(browser, "checks", resolved)
        await browser.wait_for(text_in("section.action", "已更换垃圾箱"), message="the owner's result")
        assert await browser.script("return [...document.querySelectorAll('.photos a')].map(a => a.href)") == [
            "https://img.example.org/ws/done.jpg"]
        await browser.screenshot("check")
        await browser.run((await browser.wait_for(css('[data-action="pass"]'))).click)
        await browser.wait_for(text_in("#notice", "已结案"), message="the case closed")

        await open_from_queue(browser, "returned", returned)
        await browser.wait_for(text_in("section.action", "不属于环卫所"), message="the return reason")
        owner = await browser.wait_for(css('select[name="owner"]'))
        await browser.run(lambda: Select(owner).select_by_value("chengguan"))
        await browser.run((await browser.wait_for(css('input[name="reason"]'))).send_keys, "转城管执法中队")
        await browser.run((await browser.wait_for(css('[data-action="dispatch"]'))).click)
        await browser.wait_for(text_in("#notice", "已派遣给"), message="the returned case dispatched")
        task = await chengguan.wait_for(lambda m: m["type"] == "task.assigned" and m["data"]["case_no"] == returned, 30)
        assert task["data"]["owner"] == "chengguan"

        # 全部案件 with filters: 龙头社区's cases closed now — the checked one, not the others.
        await state_of(street, resolved, "closed")
        await browser.run((await browser.wait_for(css('#queues a[data-queue="all"]'))).click)
        state = await browser.wait_for(css('form.filters select[name="state"]'))
        await browser.run(lambda: Select(state).select_by_value("closed"))
        community = await browser.wait_for(css('form.filters select[name="community"]'))
        await browser.run(lambda: Select(community).select_by_value("370402001001"))
        await browser.run((await browser.wait_for(css('form.filters button[type="submit"]'))).click)
        rows = "return [...document.querySelectorAll('#list tr[data-case]')].map(r => r.dataset.case)"
        # (The unfiltered list was there a moment before: wait for the filtered one.)
        listed = await browser.wait_for(redrawn_is_false(lambda d: (lambda found: found if resolved in found and extended
                                                                    not in found else False)(d.execute_script(rows))),
                                        message="only the closed case under its filters")
        assert returned not in listed

    await state_of(street, resolved, "closed")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=street.supervision.app), base_url="http://s",
                                 headers={"Authorization": f"Bearer {OPERATOR}"}, timeout=15) as http:
        case = (await asyncio.wait_for(http.get(f"/api/v1/cases/{extended}"), 15)).json()
    assert case["extension_state"] == "approved" and datetime.fromisoformat(case["due_at"]) == until


async def submit_accepted(street) -> str:
    """A complete report (category and place): accepted and dispatched to 环卫所 by routing."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=street.intake.app), base_url="http://intake",
                                 headers={"Authorization": f"Bearer {HOTLINE}"}, timeout=15) as http:
        answer = await asyncio.wait_for(http.post("/api/v1/reports", json=report(category="CM04")), 15)
    assert answer.status_code == 201 and answer.json()["state"] == "accepted", answer.text
    return answer.json()["case_no"]

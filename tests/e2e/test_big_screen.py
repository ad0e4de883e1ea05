"""The big screen (大屏) in a real headless Chromium behind the front door, with all four services and the live
figures process: it draws the street's 122 unit grids from routing's GeoJSON, shows the numbers the APIs give
(today's statistics, the live figures, the case lists), and takes a new report's events as they happen (pushed
over the event stream) without a reload. Screenshots go to .local/artifacts/screenshots/."""
from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, AsyncIterator
from zoneinfo import ZoneInfo

import httpx
import pytest
from selenium.webdriver.common.by import By

from shared.settings import Settings
from services.supervision.live.bootstrap import build as build_live
from tests.e2e.conftest import TERMINAL_TOKEN, free_port
from tests.e2e.frontdoor import browser, open_front_door  # noqa: F401  (fixtures)
from tests.support import eventually, grant

pytestmark = pytest.mark.e2e

OPERATOR = "bigscreen-operator"
ZONE = ZoneInfo("Asia/Shanghai")


@asynccontextmanager
async def live_process(settings: Settings) -> AsyncIterator[tuple[Any, int]]:
    """Supervision's live figures process (faust app + HTTP) on a free port, its tables recovered."""
    import uvicorn

    live = build_live(settings, manage_runtime=False)
    await asyncio.wait_for(live.runtime.start(), 60)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(live.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                           timeout_graceful_shutdown=2))  # the page's event stream never ends by itself
    task = asyncio.create_task(server.serve())
    try:
        await live.runtime.wait_until_consuming(60)
        while not server.started:
            await asyncio.wait_for(asyncio.sleep(0.05), 1)
        yield live, port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)
        await asyncio.wait_for(live.runtime.stop(), 60)


def report(point: tuple[float, float], n: int, category: str = "CM04") -> dict[str, Any]:
    return {"source": "terminal", "external_id": f"bigscreen-{uuid.uuid4().hex[:10]}", "category": category,
            "description": f"{n}号楼前垃圾箱损坏，垃圾外溢", "location": {"lon": point[0], "lat": point[1]},
            "address": None, "reporter": {"name": "李先生", "phone": "13900001001"}, "coordinator": None,
            "media": [], "observed_at": datetime.now(ZONE).isoformat()}


async def submit(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    answer = await asyncio.wait_for(client.post("/api/v1/reports", json=body,
                                                headers={"Authorization": f"Bearer {TERMINAL_TOKEN}"}), 15)
    assert answer.status_code == 201 and answer.json()["state"] == "accepted", answer.text
    return answer.json()["case_no"]


async def api_numbers(client: httpx.AsyncClient) -> dict[str, Any]:
    """What the APIs say now, through the front door, as the screen asks for it."""
    auth = {"Authorization": f"Bearer {OPERATOR}"}
    day = datetime.now(ZONE).date().isoformat()
    stats = (await client.get("/api/v1/stats", params={"from": day, "to": day, "by": "category"}, headers=auth)).json()
    live = (await client.get("/api/v1/live/figures", headers=auth)).json()
    return {"received": stats["total"]["received"], "closed": stats["total"]["closed"],
            "open": live["open_now"], "overdue": live["overdue_now"], "live": live}


async def drawn_counters(browser: Any) -> dict[str, str]:
    return await browser.script(
        "const v = (id) => document.getElementById(id).dataset.value;"
        "return {received: v('counter-received'), closed: v('counter-closed'), open: v('counter-open'),"
        " overdue: v('counter-overdue'), onTime: v('counter-on-time'), satisfaction: v('counter-satisfaction')};")


@pytest.mark.timeout(300)
async def test_the_big_screen_draws_the_street_shows_the_api_numbers_and_takes_events_live(street, browser, tmp_path,
                                                                                             demo_street):
    settings = street.settings
    points = [(a.lon, a.lat, a.unit_grid) for a in demo_street.addresses]
    first, second = points[0], next(p for p in points if p[2] != points[0][2])
    async with live_process(settings) as (live, live_port):
        services = (street.intake, street.routing, street.supervision, street.notify, live)
        await grant(settings, *services, token=OPERATOR, name="指挥中心值班员", role="operator")
        async with open_front_door(street, tmp_path / "nginx", live_port=live_port) as door, \
                httpx.AsyncClient(base_url=door.url, timeout=15) as client:
            # Two cases before the screen opens: it must show them from the APIs, not only from the stream.
            before = [await submit(client, report(first[:2], 1)), await submit(client, report(first[:2], 2))]
            # …and a few elsewhere, so that the map and the charts show a street at work.
            elsewhere = [p for p in points if p[2] not in (first[2], second[2])][::37][:4]
            for n, point in enumerate(elsewhere, start=10):
                before.append(await submit(client, report(point[:2], n)))
            # A safety hazard (AQ01: 2 calendar hours, day or night) is due soon whenever the test runs.
            hazard = await submit(client, report(elsewhere[0][:2], 20, "AQ01"))
            before.append(hazard)

            async def two_open() -> dict[str, Any] | None:
                numbers = await api_numbers(client)
                row = next(r for r in numbers["live"]["unit_grids"] if r["unit_grid"] == first[2])
                # Every case counted by both before the screen opens: a case the live figures took after the
                # screen's first read and before its stream opened would show only at the next refresh.
                everyone = numbers["open"] >= len(before) and numbers["received"] >= len(before)
                return numbers if row["open"] >= 2 and everyone else None

            await eventually(two_open, what="every case open in the live figures and received in the statistics")

            # The wall's own size: 1920×1080 CSS pixels of page (the headless window keeps some for its frame).
            await browser.run(browser.driver.execute_cdp_cmd, "Emulation.setDeviceMetricsOverride",
                              {"width": 1920, "height": 1080, "deviceScaleFactor": 1, "mobile": False})
            await browser.get(door.url + "/screen")
            field = await browser.wait_for(lambda d: d.find_element(By.ID, "token"), message="the sign-in box")
            button = await browser.run(browser.driver.find_element, By.CSS_SELECTOR, "#sign-in-form button")
            # A wrong credential is told so, and the box stays for the right one.
            await browser.run(field.send_keys, "not-a-credential")
            await browser.run(button.click)
            await browser.wait_for(lambda d: "凭证无效" in d.find_element(By.ID, "sign-in-error").text, 20,
                                   "a wrong credential told so")
            await browser.run(field.clear)
            await browser.run(field.send_keys, OPERATOR)
            await browser.run(button.click)
            await browser.wait_for(lambda d: d.execute_script(
                "return window.wanggeScreen.ready && window.wanggeScreen.refreshes > 0"), 30, "the screen's first figures")
            await browser.wait_for(lambda d: d.find_element(By.ID, "live-state").get_attribute("data-state") == "open",
                                   20, "the live stream open")
            await browser.script("window.__sameDocument = 'yes';")  # gone if the page reloads

            # The street's own map: 122 unit grids registered, in the map series, and drawn (SVG paths).
            drawn = await browser.script(
                "const s = window.wanggeScreen; return {features: s.mapFeatureCount(), data: s.mapData(),"
                " paths: document.querySelectorAll('#map svg path').length};")
            assert drawn["features"] == 122
            assert len(drawn["data"]) == 122 and len({d["code"] for d in drawn["data"]}) == 122
            assert {d["code"] for d in drawn["data"]} == {g.code for g in demo_street.level("unit")}
            assert drawn["paths"] >= 122

            # The numbers the APIs give (they do not move meanwhile: nothing else happens in this street).
            api = await api_numbers(client)
            shown = await drawn_counters(browser)
            assert (shown["received"], shown["closed"], shown["open"], shown["overdue"]) == tuple(
                str(api[k]) for k in ("received", "closed", "open", "overdue"))
            grid = {d["code"]: d for d in drawn["data"]}[first[2]]
            api_grid = next(r for r in api["live"]["unit_grids"] if r["unit_grid"] == first[2])
            assert (grid["open"], grid["overdue"]) == (api_grid["open"], api_grid["overdue"]) and grid["open"] >= 2
            auth = {"Authorization": f"Bearer {OPERATOR}"}
            due_soon = (await client.get("/api/v1/cases", headers=auth, params={
                "overdue": "false", "due_before": (datetime.now(ZONE) + timedelta(hours=4)).isoformat()})).json()["cases"]
            assert hazard in {c["case_no"] for c in due_soon}
            await browser.wait_for(lambda d: hazard in [li.get_attribute("data-case-no") for li in
                                                        d.find_elements(By.CSS_SELECTOR, "#due-soon-list li")],
                                   20, "the hazard in the due-soon list")
            overdue = (await client.get("/api/v1/cases", headers=auth, params={"overdue": "true"})).json()["cases"]
            shown_overdue = await browser.script(
                "return [...document.querySelectorAll('#overdue-list li[data-case-no]')].map(li => li.dataset.caseNo)")
            assert shown_overdue == [c["case_no"] for c in sorted(overdue, key=lambda c: c["due_at"])][:4]
            ranking_rows = await browser.script("return document.querySelectorAll('#rank-communities tr').length")
            assert ranking_rows == min(6, len(demo_street.level("community")))
            await browser.screenshot("before")

            # A report arrives: its events are pushed to the wall, the counters and the map follow, no reload.
            new = await submit(client, report(second[:2], 3))
            await browser.wait_for(lambda d: d.execute_script(
                "return window.wanggeScreen.events.some(e => e.case_no === arguments[0] && e.type === 'case.dispatched')",
                new), 30, "the new case's events pushed to the page")
            feed = await browser.run(lambda: browser.driver.find_element(By.ID, "event-feed").text)
            assert new in feed and "立案" in feed
            await browser.wait_for(lambda d: d.find_element(By.ID, "counter-received").get_attribute("data-value")
                                   == str(api["received"] + 1), 30, "today's received counter up by one")
            await browser.wait_for(lambda d: d.execute_script(
                "return window.wanggeScreen.mapData().find(g => g.code === arguments[0]).open", second[2]) >= 1,
                30, "the new case's unit grid coloured")
            after = await api_numbers(client)
            await browser.wait_for(lambda d: d.find_element(By.ID, "counter-open").get_attribute("data-value")
                                   == str(after["open"]), 30, "open now as the live figures say")
            assert await browser.script("return window.__sameDocument") == "yes"
            pushed = await browser.script("return window.wanggeScreen.events")
            for event in pushed:
                assert "reporter" not in event and "phone" not in event and "description" not in event
            await asyncio.sleep(0.5)  # the highlight of the newest event fades in
            await browser.screenshot("after-report")

"""The owner's page (/owner/) and the coordinator's page (/grid/) in Debian's headless Chromium at a phone's size
(360×780), behind the front door, on the real services: an owner signs in, sees a 督办 arrive without a reload,
signs a task and resolves it with a photo uploaded from a file; a coordinator reports with a photo and the phone's
position (Chromium's geolocation override), loses the signal (network emulation), reports again, gets it back —
exactly one case per report; checks a resolved case of their grid, which closes; and records a problem fixed on
the spot (自行处置), closed at once. Phone-size screenshots go to .local/artifacts/screenshots/ (docs/screenshots/
has copies: WANGGE_UPDATE_DOC_SHOTS=1 renews them)."""
from __future__ import annotations

import asyncio
import io
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import pytest
from selenium.webdriver.common.by import By

from shared.clock import now
from shared.topics import Topics, ensure_topics
from tests.e2e.conftest import TERMINAL_TOKEN
from tests.e2e.frontdoor import REPO, Browser, chromium, front_door  # noqa: F401  (fixture)
from tests.e2e.test_work_screen import STREET_ZONE, css, text_in
from tests.support import grant

pytestmark = pytest.mark.e2e

PASSWORD = "phone-pages-pass"
OPERATOR = "pp-operator"
OWNER_TOKEN = "pp-owner-huanwei"
# 市社家宿舍11号楼, in unit grid 3704020010010101 (W001's grid); CM04 (垃圾箱) goes to 环卫所 (huanwei).
IN_W001_GRID = {"lon": 117.578802, "lat": 34.874615}
DOCS_SHOTS = REPO / "docs" / "screenshots"


def jpeg(path: Path, colour: tuple[int, int, int]) -> Path:
    """A small real photo (a JPEG Pillow writes), as a phone's gallery would hold it."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), colour).save(buffer, "JPEG", quality=80)
    path.write_bytes(buffer.getvalue())
    return path


@pytest.fixture
async def phone(request: pytest.FixtureRequest) -> AsyncIterator[Browser]:
    """Debian's headless Chromium as a phone: a 360×780 viewport, touch, zh-CN; DevTools for position and signal."""
    async with chromium(request, 360, 780, viewport=True, mobile=True) as browser:
        yield browser


async def cdp(phone: Browser, command: str, params: dict[str, Any] | None = None) -> Any:
    return await phone.run(phone.driver.execute_cdp_cmd, command, params or {})


async def shot(phone: Browser, name: str, docs_name: str | None = None) -> None:
    """A screenshot of the phone; with docs_name, and WANGGE_UPDATE_DOC_SHOTS=1, also copied to docs/screenshots/
    for the README (a test run never changes tracked files by itself)."""
    await phone.script("window.scrollTo(0, 0)")  # the top: the notice and what the person sees first
    path = await phone.screenshot(name)
    if docs_name and os.environ.get("WANGGE_UPDATE_DOC_SHOTS") == "1":
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SHOTS / docs_name)


async def sign_in(phone: Browser, url: str, username: str) -> None:
    await phone.get(url)
    field = await phone.wait_for(css("#wg-username"), message="the sign-in form")
    await phone.run(field.send_keys, username)
    await phone.run((await phone.wait_for(css("#wg-password"))).send_keys, PASSWORD)
    await phone.run((await phone.wait_for(css("#wg-sign-in"))).click)
    await phone.wait_for(css("body[data-ready] #view"), message="the page after signing in")


async def attach(phone: Browser, selector: str, path: Path) -> None:
    """Choose a photo file in a picker, as the camera or the gallery would give it (the input itself is hidden
    under its label, as on the page; WebDriver gives a file input its file without a click)."""
    field = await phone.run(phone.driver.find_element, By.CSS_SELECTOR, selector)
    await phone.run(field.send_keys, str(path))


async def click(phone: Browser, selector: str) -> None:
    element = await phone.wait_for(css(selector), message=selector)
    await phone.script("arguments[0].scrollIntoView({block: 'center'})", element)
    await phone.run(element.click)


async def type_into(phone: Browser, selector: str, words: str) -> None:
    element = await phone.wait_for(css(selector), message=selector)
    await phone.script("arguments[0].scrollIntoView({block: 'center'})", element)
    await phone.run(element.send_keys, words)


async def stand_in_w001_grid(phone: Browser, origin: str) -> None:
    """The phone may tell its position, and it is in W001's grid (Chromium's geolocation override)."""
    await cdp(phone, "Browser.grantPermissions", {"origin": origin, "permissions": ["geolocation"]})
    await cdp(phone, "Emulation.setGeolocationOverride",
              {"latitude": IN_W001_GRID["lat"], "longitude": IN_W001_GRID["lon"], "accuracy": 10})


def client(service, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://w",
                             headers={"Authorization": f"Bearer {token}"}, timeout=15)


async def case_state(street, case_no: str, wanted: str, timeout: float = 40) -> dict:
    async with client(street.supervision, OPERATOR) as operator:
        async def poll() -> dict:
            while True:
                answer = await operator.get(f"/api/v1/cases/{case_no}")
                if answer.status_code == 200 and answer.json()["state"] == wanted:
                    return answer.json()
                await asyncio.sleep(0.2)
        return await asyncio.wait_for(poll(), timeout)


async def terminal_report(street, description: str) -> str:
    body = {"source": "terminal", "external_id": f"pp-{uuid.uuid4().hex[:10]}", "category": "CM04",
            "description": description, "location": IN_W001_GRID, "address": None, "reporter": {"name": "孙女士", "phone": "13900007788"},
            "coordinator": None, "media": [], "observed_at": now().astimezone(STREET_ZONE).isoformat()}
    async with client(street.intake, TERMINAL_TOKEN) as terminal:
        answer = await asyncio.wait_for(terminal.post("/api/v1/reports", json=body), 15)
    assert answer.status_code == 201, answer.text
    return answer.json()["case_no"]


@pytest.fixture
async def people(street):
    """The street's people on these services: an operator's and an owner's token for the test's own moves, and the
    accounts who use the pages (coordinator w001 of W001's grid, 环卫所's huanwei)."""
    services = (street.intake, street.routing, street.supervision, street.notify)
    await ensure_topics(street.settings.kafka_bootstrap, [Topics(street.settings.topic_prefix).for_owner("huanwei")])
    await grant(street.settings, *services, token=OPERATOR, name="值班员", role="operator")
    await grant(street.settings, *services, token=OWNER_TOKEN, name="环卫所", role="owner", owner_code="huanwei")
    accounts = street.supervision.app.state.people
    await accounts.add(username="w001", display_name="网格员一", kind="coordinator", password=PASSWORD, worker_id="W001")
    await accounts.add(username="huanwei", display_name="环卫所", kind="owner", password=PASSWORD, owner_code="huanwei")
    return street


async def test_an_owner_sees_a_urge_live_signs_and_resolves_with_a_photo(people, front_door, phone, tmp_path):
    street = people
    case_no = await terminal_report(street, "小区门口垃圾箱破损，垃圾外溢")
    await case_state(street, case_no, "dispatched")

    await sign_in(phone, f"{front_door.url}/owner/", "huanwei")
    row = f'li.task[data-case="{case_no}"]'
    await phone.wait_for(css(row), message="the new task in the list")
    await shot(phone, "owner-list", "owner-tasks.png")

    # 督办 from the command center reaches the open page without a reload (the page polls every 10 s).
    marker = await phone.script("window.__same_page = 1; return window.__same_page")
    async with client(street.supervision, OPERATOR) as operator:
        urged = await operator.post(f"/api/v1/cases/{case_no}/urge", json={"note": "居民反映强烈，请今日处置"})
        assert urged.status_code == 200, urged.text
    await phone.wait_for(text_in(f'{row} [data-role="urge"]', "居民反映强烈"), timeout=30, message="the 督办 on the task")
    await phone.wait_for(text_in("#notice", "督办"), message="the 督办 announced")
    assert marker == 1 and await phone.script("return window.__same_page") == 1, "the page was reloaded"

    # The task page: the place, the masked reporter, the countdown; 签收.
    await click(phone, f"{row} a")
    page = f'article.task-page[data-case="{case_no}"]'
    await phone.wait_for(css(f'{page}[data-state="dispatched"]'), message="the task page")
    await phone.wait_for(text_in("#task-info", "孙*"), message="the reporter, masked")
    info = await phone.run(lambda: phone.driver.find_element(By.CSS_SELECTOR, "#task-info").text)
    assert "13900007788" not in info and "139****7788" in info and "剩余" in info
    await phone.wait_for(css('#task-map[data-ready="1"]'), message="the street's map")
    await shot(phone, "owner-task", "owner-task.png")
    await click(phone, '[data-action="accepted"]')
    await phone.wait_for(css(f'{page}[data-state="in_progress"]'), message="signed: in progress")

    # A refusal's reason is shown: a result of only blanks is refused by supervision, said in the form.
    await attach(phone, '[data-role="resolved-photos"]', jpeg(tmp_path / "after.jpg", (40, 160, 60)))
    await phone.wait_for(css('form[data-form="resolved"] .preview img'), message="the photo's preview")
    await type_into(phone, 'form[data-form="resolved"] textarea[name="result"]', "已更换新垃圾箱并清运垃圾")
    await click(phone, '[data-action="resolved"]')
    await phone.wait_for(css(f'{page}[data-state="resolved"]'), timeout=30, message="resolved")
    await phone.wait_for(text_in("#notice", "处置完成"), message="the answer told")

    case = await case_state(street, case_no, "resolved")
    assert case["result"] == "已更换新垃圾箱并清运垃圾"
    assert len(case["result_media"]) == 1 and case["result_media"][0].startswith("/media/")
    # The photo is stored by wangge and served through the front door to the owner's session.
    cookie = next(c["value"] for c in await phone.run(phone.driver.get_cookies) if c["name"] == "wangge_session")
    async with httpx.AsyncClient(base_url=front_door.url, cookies={"wangge_session": cookie}, timeout=10) as door:
        photo = await door.get(case["result_media"][0])
        assert photo.status_code == 200 and photo.headers["content-type"].startswith("image/")

    # Any task opens by its number (an owner with thousands need not page to it); another's is not found.
    await phone.get(f"{front_door.url}/owner/")
    await type_into(phone, "#jump", case_no + "\n")
    await phone.wait_for(css(f'{page}[data-state="resolved"]'), message="the task opened by its number")
    await phone.wait_for(text_in("#task-actions", "等待网格员或指挥中心现场核查"), message="nothing left to do but wait")
    await phone.get(f"{front_door.url}/owner/")
    await type_into(phone, "#jump", "20261206-9999\n")
    await phone.wait_for(text_in("#view", "不存在或不属于本单位"), message="an unknown number told")


async def test_a_coordinator_reports_with_photo_and_position_also_offline_exactly_once(people, front_door, phone, tmp_path):
    street = people
    await stand_in_w001_grid(phone, front_door.url)
    await sign_in(phone, f"{front_door.url}/grid/", "w001")

    async def report(description: str, photo: Path) -> None:
        await type_into(phone, 'textarea[name="description"]', description)
        await click(phone, "#locate")
        await phone.wait_for(css("#point[data-lon]"), message="the phone's position")
        await attach(phone, '[data-role="photos"]', photo)
        await phone.wait_for(css("#report-form .preview img"), message="the photo's preview")
        await click(phone, "#send")

    online_words, offline_words = "路边垃圾箱倾倒（在线上报）", "垃圾箱盖子丢失（无信号时上报）"
    await phone.wait_for(css('#grid-map[data-ready="1"]'), message="the map of W001's grids")
    await type_into(phone, 'textarea[name="description"]', "垃圾箱")
    await phone.wait_for(css('[data-role="suggestions"] .chip.best[data-code="CM04"]'), message="the suggested category")
    await phone.run((await phone.wait_for(css('textarea[name="description"]'))).clear)
    await report(online_words, jpeg(tmp_path / "one.jpg", (200, 80, 40)))
    await phone.wait_for(text_in("#notice", "已上报，案件编号"), timeout=30, message="the online report answered")
    await shot(phone, "grid-report", "grid-report.png")

    # No signal: the report is kept on the phone, photo and all.
    await cdp(phone, "Network.enable")
    await cdp(phone, "Network.emulateNetworkConditions",
              {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    await report(offline_words, jpeg(tmp_path / "two.jpg", (40, 80, 200)))
    await phone.wait_for(text_in("#notice", "已保存在手机上"), timeout=30, message="kept on the phone")
    await phone.wait_for(css('body[data-outbox="1"]'), message="one report waiting")
    await shot(phone, "grid-offline", "grid-offline.png")
    pool = street.supervision.runtime.pool
    assert await pool.fetchval("SELECT count(*) FROM cases WHERE description = $1", offline_words) == 0

    # The signal is back: it goes out by itself, once.
    await cdp(phone, "Network.emulateNetworkConditions",
              {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    await phone.wait_for(css('body[data-outbox="0"]'), timeout=40, message="the waiting report sent")
    await phone.wait_for(text_in("#notice", "已发送 1 件"), message="its sending told")
    # A second flush (another 'online', the 15 s retry) finds nothing to send: still one case per report.
    await phone.script("window.dispatchEvent(new Event('online'))")
    for words in (online_words, offline_words):
        async def one() -> None:
            while await pool.fetchval("SELECT count(*) FROM cases WHERE description = $1", words) != 1:
                await asyncio.sleep(0.2)
        await asyncio.wait_for(one(), 30)
    await asyncio.sleep(2)
    rows = await pool.fetch(
        """SELECT c.description, e.data->'media' AS media, e.data->'coordinator'->>'worker_id' AS worker
           FROM cases c JOIN case_events e ON e.case_id = c.case_id AND e.type = 'case.reported'
           WHERE c.description = ANY($1)""", [online_words, offline_words])
    assert sorted(r["description"] for r in rows) == sorted([online_words, offline_words])
    for r in rows:
        assert r["worker"] == "W001" and len(r["media"]) == 1 and r["media"][0].startswith("/media/")

    await phone.get(f"{front_door.url}/grid/#/mine")
    await phone.wait_for(text_in("#my-reports", offline_words), timeout=20, message="their own reports")
    await shot(phone, "grid-mine", "grid-mine.png")


async def test_a_coordinator_checks_a_resolved_case_and_a_fix_on_the_spot_closes_at_once(people, front_door, phone, tmp_path):
    street = people
    case_no = await terminal_report(street, "绿化带内垃圾箱满溢")
    await case_state(street, case_no, "dispatched")
    async with client(street.supervision, OWNER_TOKEN) as owner:
        for update in ({"type": "task.accepted"}, {"type": "task.resolved", "result": "已清运", "media": []}):
            answer = await owner.post(f"/api/v1/tasks/{case_no}/updates", json=update)
            assert answer.status_code == 200, answer.text
    await case_state(street, case_no, "resolved")

    await stand_in_w001_grid(phone, front_door.url)
    await sign_in(phone, f"{front_door.url}/grid/#/checks", "w001")
    card = f'#checks li.card[data-case="{case_no}"]'
    await phone.wait_for(css(card), timeout=20, message="the case to check")
    await attach(phone, f'{card} [data-role="check-photos"]', jpeg(tmp_path / "check.jpg", (90, 90, 90)))
    await shot(phone, "grid-checks", "grid-checks.png")
    await click(phone, f'{card} [data-action="check"]')
    await phone.wait_for(text_in("#notice", "核查通过"), timeout=30, message="the check answered")
    closed = await case_state(street, case_no, "closed")
    assert closed["close_outcome"] == "resolved"

    # 自行处置: before and after photos, what was done; the case is closed at once, never dispatched.
    await phone.get(f"{front_door.url}/grid/#/fixed")
    await phone.wait_for(css('#report-form[data-fixed="1"]'), message="the 自行处置 form")
    words = "楼道口垃圾箱倾倒（已扶正）"
    await type_into(phone, 'textarea[name="description"]', words)
    await phone.wait_for(css('[data-role="suggestions"] .chip.best[data-code="CM04"]'), message="the suggested category")
    await click(phone, "#locate")
    await phone.wait_for(css("#point[data-lon]"), message="the phone's position")
    await attach(phone, '[data-role="photos"]', jpeg(tmp_path / "before.jpg", (150, 40, 40)))
    await attach(phone, '[data-role="after-photos"]', jpeg(tmp_path / "fixed.jpg", (40, 150, 40)))
    await type_into(phone, 'textarea[name="result"]', "现场扶正垃圾箱并清扫")
    await click(phone, "#send")
    notice = await phone.wait_for(text_in("#notice", "自行处置已记录，案件编号"), timeout=30, message="recorded")
    assert notice
    text = await phone.run(lambda: phone.driver.find_element(By.CSS_SELECTOR, "#notice").text)
    fixed_no = text.rsplit(" ", 1)[-1].strip()
    fixed = await case_state(street, fixed_no, "closed")
    assert fixed["owner"] is None and fixed["dispatch_count"] == 0
    await shot(phone, "grid-fixed", "grid-fixed.png")

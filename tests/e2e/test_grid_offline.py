"""The coordinator's page (/grid/) opens without signal from the first tap (issue 16): a coordinator signs in and
opens /grid/ once with signal (its service worker keeps the page's shell), then with the front door unreachable
(the phone offline in DevTools, and the test's nginx stopped, so that nothing — the worker's own requests
included — can reach it) reloads /grid/: the page shows, as the coordinator signed in before, and a report made
there is kept on the phone; with the signal back it goes out by itself, exactly one case. The kept shell holds
no API answer and no photo. Debian's headless Chromium at 360×780, the real front door and services."""
from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.frontdoor import FrontDoor, front_door  # noqa: F401  (fixture)
from tests.e2e.test_phone_pages import PASSWORD, cdp, click, people, phone, shot, sign_in, type_into  # noqa: F401  (fixtures)
from tests.e2e.test_work_screen import css, text_in
from tests.support import until_credential

pytestmark = pytest.mark.e2e

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _nginx(door: FrontDoor, *args: str) -> list[str]:
    conf = door.conf_dir
    return [NGINX, "-p", str(conf), "-c", str(conf / "nginx.conf"), "-e", str(conf / "logs" / "error.log"), *args]


async def _answers(door: FrontDoor) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1) as client:
            return (await client.get(f"{door.url}/healthz")).status_code == 200
    except httpx.TransportError:
        return False


async def _until(check, want: bool, timeout: float = 15) -> None:
    async def poll() -> None:
        while await check() != want:
            await asyncio.sleep(0.1)
    await asyncio.wait_for(poll(), timeout)


async def front_door_down(door: FrontDoor) -> None:
    """Stop the test's nginx (the fixture's; it finds it gone at the end and leaves it)."""
    await asyncio.wait_for(asyncio.to_thread(subprocess.run, _nginx(door, "-s", "stop"), check=True, timeout=20), 25)
    await _until(lambda: _answers(door), False)


async def front_door_up(door: FrontDoor) -> asyncio.subprocess.Process:
    """nginx again on the same port from the same rendered config; the caller stops it."""
    proc = await asyncio.create_subprocess_exec(*_nginx(door, "-g", "daemon off;"))
    await _until(lambda: _answers(door), True)
    return proc


async def offline(phone, yes: bool) -> None:
    await cdp(phone, "Network.enable")
    await cdp(phone, "Network.emulateNetworkConditions",
              {"offline": yes, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})


KEPT = """
const paths = [];
for (const name of await caches.keys()) {
  for (const request of await (await caches.open(name)).keys()) paths.push(new URL(request.url).pathname);
}
return paths;
"""


async def test_the_worker_file_is_served_as_javascript_and_the_csp_allows_it(front_door):
    async with httpx.AsyncClient(base_url=front_door.url, timeout=10) as door:
        worker = await door.get("/grid/sw.js")
        page = await door.get("/grid/")
    assert worker.status_code == 200 and worker.headers["content-type"].startswith("application/javascript")
    assert "wangge-grid-shell-" in worker.text and "/assets/grid.js" in worker.text
    assert "no-cache" in worker.headers.get("cache-control", "")  # a new build's worker is seen at once
    for answer in (worker, page):
        assert "worker-src 'self'" in answer.headers["content-security-policy"]


async def test_a_coordinator_opens_the_page_and_reports_without_signal_then_it_goes_once(people, front_door, phone):
    street = people
    pool = street.supervision.runtime.pool
    words = "井盖缺失（无信号时打开页面上报）"
    await sign_in(phone, f"{front_door.url}/grid/", "w001")
    # The worker installs and takes the page (clients.claim): the shell is kept.
    await phone.wait_for(css('body[data-shell="kept"]'), timeout=30, message="the service worker ready")
    await phone.wait_for(lambda d: d.execute_script("return !!navigator.serviceWorker.controller"), timeout=20,
                         message="the page under its worker")

    restarted = None
    try:
        # No signal: the phone offline, and the front door not there at all.
        await offline(phone, True)
        await front_door_down(front_door)
        await phone.get(f"{front_door.url}/grid/")
        await phone.wait_for(css('body[data-ready="1"][data-offline-start="1"] #report-form'), timeout=30,
                             message="the page opened without signal")
        assert await phone.script("return document.body.dataset.worker") == "W001"
        assert not await phone.script("return !!document.getElementById('wg-sign-in-page')"), "asked to sign in offline"
        await phone.wait_for(text_in("#signal", "离线"), message="offline said")

        await type_into(phone, 'textarea[name="description"]', words)
        await type_into(phone, 'input[name="address"]', "市社家宿舍11号楼东侧")
        await click(phone, "#send")
        await phone.wait_for(text_in("#notice", "已保存在手机上"), timeout=30, message="kept on the phone")
        await phone.wait_for(css('body[data-outbox="1"]'), message="one report waiting")
        await shot(phone, "grid-opened-offline")
        assert await pool.fetchval("SELECT count(*) FROM cases WHERE description = $1", words) == 0

        # The kept shell: the page, its bundle and styles; never an API answer or a photo.
        kept = await phone.script(KEPT)
        assert "/grid/" in kept and "/assets/grid.js" in kept, kept
        assert not [p for p in kept if p.startswith(("/api/", "/media/"))], kept

        # The signal is back: the report goes out by itself, once.
        restarted = await front_door_up(front_door)
        await offline(phone, False)
        await phone.wait_for(css('body[data-outbox="0"]'), timeout=40, message="the waiting report sent")
        await phone.wait_for(text_in("#notice", "已发送 1 件"), message="its sending told")
        await phone.script("window.dispatchEvent(new Event('online'))")  # another try finds nothing to send

        async def one() -> None:
            while await pool.fetchval("SELECT count(*) FROM cases WHERE description = $1", words) != 1:
                await asyncio.sleep(0.2)
        await asyncio.wait_for(one(), 30)
        await asyncio.sleep(2)
        assert await pool.fetchval("SELECT count(*) FROM cases WHERE description = $1", words) == 1
        worker = await pool.fetchval(
            """SELECT e.data->'coordinator'->>'worker_id' FROM cases c
               JOIN case_events e ON e.case_id = c.case_id AND e.type = 'case.reported' WHERE c.description = $1""", words)
        assert worker == "W001"
        kept = await phone.script(KEPT)
        assert not [p for p in kept if p.startswith(("/api/", "/media/"))], kept
    finally:
        if restarted is not None and restarted.returncode is None:
            restarted.send_signal(3)  # SIGQUIT: graceful
            try:
                await asyncio.wait_for(restarted.wait(), 10)
            except TimeoutError:
                restarted.kill()
                await restarted.wait()


async def test_a_session_ended_while_offline_asks_to_sign_in_before_the_kept_report_goes(people, front_door, phone):
    street = people
    pool = street.supervision.runtime.pool
    words = "路灯不亮（离线上报，会话已失效）"
    await sign_in(phone, f"{front_door.url}/grid/", "w001")
    await phone.wait_for(lambda d: d.execute_script("return !!navigator.serviceWorker.controller"), timeout=30,
                         message="the page under its worker")
    cookie = next(c["value"] for c in await phone.run(phone.driver.get_cookies) if c["name"] == "wangge_session")

    restarted = None
    try:
        await offline(phone, True)
        await front_door_down(front_door)
        await phone.get(f"{front_door.url}/grid/")
        await phone.wait_for(css('body[data-ready="1"][data-offline-start="1"] #report-form'), timeout=30,
                             message="the page opened without signal")
        await type_into(phone, 'textarea[name="description"]', words)
        await type_into(phone, 'input[name="address"]', "市社家宿舍11号楼")
        await click(phone, "#send")
        await phone.wait_for(css('body[data-outbox="1"]'), timeout=30, message="one report waiting")

        # Meanwhile the session ends (signed out elsewhere, or expired).
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=street.supervision.app), base_url="http://w",
                                     cookies={"wangge_session": cookie}, headers={"X-Requested-With": "wangge"},
                                     timeout=15) as supervision:
            ended = await supervision.delete("/api/v1/sessions")
        assert ended.status_code in (200, 204), ended.text
        # Ended everywhere while the phone is still offline: the end reaches intake on wangge.credentials.
        await until_credential(cookie, street.intake, street.supervision, valid=False)

        # The signal is back: the sign-in form comes first; the report still waits, nothing was sent.
        restarted = await front_door_up(front_door)
        await offline(phone, False)
        await phone.script("window.dispatchEvent(new Event('online'))")
        await phone.wait_for(css("#wg-sign-in-page"), timeout=40, message="the sign-in form")
        await phone.wait_for(text_in("#wg-sign-in-error", "登录已失效"), message="why it is asked")
        assert await phone.script("return document.body.dataset.outbox") == "1"
        assert await pool.fetchval("SELECT count(*) FROM cases WHERE description = $1", words) == 0

        # Signed in again as the same coordinator: the page stays, the report goes at once, one case.
        marker = await phone.script("window.__same_page = 1; return window.__same_page")
        await type_into(phone, "#wg-username", "w001")
        await type_into(phone, "#wg-password", PASSWORD)
        await click(phone, "#wg-sign-in")
        await phone.wait_for(css('body[data-outbox="0"]'), timeout=12, message="the waiting report sent at once")
        assert marker == 1 and await phone.script("return window.__same_page") == 1, "the page was reloaded"

        async def one() -> None:
            while await pool.fetchval("SELECT count(*) FROM cases WHERE description = $1", words) != 1:
                await asyncio.sleep(0.2)
        await asyncio.wait_for(one(), 30)
        await asyncio.sleep(2)
        assert await pool.fetchval("SELECT count(*) FROM cases WHERE description = $1", words) == 1
    finally:
        if restarted is not None and restarted.returncode is None:
            restarted.send_signal(3)
            try:
                await asyncio.wait_for(restarted.wait(), 10)
            except TimeoutError:
                restarted.kill()
                await restarted.wait()

"""The front door and a real browser in tests.

- `open_front_door(street, live_port=None)`: the four services of the `street` fixture served over HTTP
  (uvicorn on free loopback ports), and nginx in front of them, rendered by `deploy/local/nginx.sh render`
  from the same template `./dev up` uses, so the routing under test is the shipped one. Yields a FrontDoor
  whose `url` is the one origin a browser talks to (`/` work screen, `/screen` big screen, `/api/v1/…`).
  The `front_door` fixture is that, for the `street` fixture, without the live-figures process.
- `browser`: Debian's headless Chromium driven through Debian's chromium-driver (Selenium), 1920×1080,
  zh-CN. Selenium is blocking and the services under test run on this test's event loop, so EVERY call
  into the driver must leave the loop free: use `await browser.run(fn, *args)` (a thread) or the helpers
  `get`, `wait_for`, `script`, `screenshot` — never `browser.driver.get(...)` directly, which would hang
  until nginx times out, since nothing could answer it.

Screenshots go to `.local/artifacts/screenshots/` (WANGGE_ARTIFACTS_DIR), kept after the run.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import httpx
import pytest
import uvicorn

from tests.e2e.conftest import Street, free_port

REPO = Path(__file__).resolve().parents[2]
NGINX_SH = REPO / "deploy" / "local" / "nginx.sh"
WEB_SH = REPO / "deploy" / "local" / "web.sh"
ARTIFACTS = Path(os.environ.get("WANGGE_ARTIFACTS_DIR", REPO / ".local" / "artifacts"))
SCREENSHOTS = ARTIFACTS / "screenshots"


@dataclass
class FrontDoor:
    """nginx in front of one test's services."""

    url: str
    ports: dict[str, int] = field(default_factory=dict)
    conf_dir: Path | None = None


@asynccontextmanager
async def _served(app: Any) -> AsyncIterator[int]:
    """Serve an ASGI app with uvicorn on a free loopback port, for as long as the block runs."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            if task.done():
                task.result()  # raises what stopped it
            await asyncio.sleep(0.05)
        else:
            raise TimeoutError(f"uvicorn did not start on port {port}")
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


def _build_web() -> None:
    """web/dist as ./dev up builds it (npm ci from the lock file once, then esbuild)."""
    subprocess.run([str(WEB_SH), "build"], check=True, cwd=REPO, timeout=600)


@asynccontextmanager
async def open_front_door(street: Street, conf_dir: Path, live_port: int | None = None) -> AsyncIterator[FrontDoor]:
    """The street's services on free ports, nginx on another, rendered from deploy/nginx/nginx.conf.tmpl."""
    await asyncio.wait_for(asyncio.to_thread(_build_web), 600)
    async with _served(street.intake.app) as intake, _served(street.routing.app) as routing, \
            _served(street.supervision.app) as supervision, _served(street.notify.app) as notify:
        ports = {"intake": intake, "routing": routing, "supervision": supervision, "notify": notify,
                 "live": live_port or free_port()}
        async with open_nginx(conf_dir, ports) as door:
            yield door


@asynccontextmanager
async def open_nginx(conf_dir: Path, ports: dict[str, int], env: dict[str, str] | None = None) -> AsyncIterator[FrontDoor]:
    """nginx alone, rendered by `deploy/local/nginx.sh render` for the services on `ports` (intake, routing,
    supervision, notify, live: a name left out gets a free port nothing answers on) and `env` (more WANGGE_…
    settings the render reads, e.g. WANGGE_SMS_GATEWAY_ADDRESSES, or WANGGE_INTAKE_PORTS for several instances),
    on a free port of its own."""
    ports = {**{name: free_port() for name in ("intake", "routing", "supervision", "notify", "live")}, **ports,
             "front": free_port()}
    # One instance of each unless `env` says otherwise (WANGGE_<NAME>_PORTS): a developer's WANGGE_INSTANCES would
    # otherwise add ports nothing of this test's answers on.
    rendered = dict(os.environ, WANGGE_INSTANCES="1", WANGGE_FRONT_PORT=str(ports["front"]),
                    WANGGE_INTAKE_PORT=str(ports["intake"]),
                    WANGGE_ROUTING_PORT=str(ports["routing"]), WANGGE_SUPERVISION_PORT=str(ports["supervision"]),
                    WANGGE_NOTIFY_PORT=str(ports["notify"]), WANGGE_LIVE_PORT=str(ports["live"]), **(env or {}))
    conf_dir.mkdir(parents=True, exist_ok=True)
    await asyncio.wait_for(asyncio.to_thread(
        subprocess.run, [str(NGINX_SH), "render", str(conf_dir)], check=True, env=rendered, timeout=300), 310)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = await asyncio.create_subprocess_exec(
        nginx, "-p", str(conf_dir), "-c", str(conf_dir / "nginx.conf"), "-e", str(conf_dir / "logs" / "error.log"),
        "-g", "daemon off;")
    url = f"http://127.0.0.1:{ports['front']}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=2) as client:
            for _ in range(100):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.returncode is not None:
                    raise RuntimeError(f"nginx exited ({proc.returncode}); see {conf_dir}/logs/error.log")
                await asyncio.sleep(0.1)
            else:
                raise TimeoutError(f"nginx did not answer on {url}; see {conf_dir}/logs/error.log")
        yield FrontDoor(url=url, ports=ports, conf_dir=conf_dir)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGQUIT)  # graceful: finish what is in flight
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@pytest.fixture
async def front_door(street: Street, tmp_path: Path) -> AsyncIterator[FrontDoor]:
    """nginx in front of the `street` fixture's four services (no live-figures process)."""
    async with open_front_door(street, tmp_path / "nginx") as door:
        yield door


class Browser:
    """A headless Chromium whose blocking calls run in a thread, so the services on this loop can answer it."""

    def __init__(self, driver: Any, name: str):
        self.driver = driver
        self.name = name

    async def run(self, fn: Callable[..., Any], *args: Any, timeout: float = 60) -> Any:
        """Call fn(*args) (a driver call, or any function using the driver) off the event loop."""
        return await asyncio.wait_for(asyncio.to_thread(fn, *args), timeout)

    async def get(self, url: str) -> None:
        """Open a page."""
        await self.run(self.driver.get, url)

    async def script(self, js: str, *args: Any) -> Any:
        """Run JavaScript in the page and return its result."""
        return await self.run(self.driver.execute_script, js, *args)

    async def wait_for(self, condition: Callable[[Any], Any], timeout: float = 20, message: str = "") -> Any:
        """Wait until condition(driver) is truthy (Selenium's WebDriverWait, in a thread); its value."""
        from selenium.webdriver.support.ui import WebDriverWait

        def wait() -> Any:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(condition, message)

        return await self.run(wait, timeout=timeout + 10)

    async def screenshot(self, name: str) -> Path:
        """Save a PNG of the window under .local/artifacts/screenshots/<test>-<name>.png."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.name}-{name}.png"
        await self.run(self.driver.save_screenshot, str(path))
        return path

    def console_errors(self) -> list[str]:
        """The page's console errors so far (for a failing test's message)."""
        try:
            return [e["message"] for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"]
        except Exception:  # noqa: BLE001 — diagnostics only
            return []


def _chromium() -> tuple[str, str]:
    """Debian's chromium and chromedriver; a clear failure (not a skip) when they are missing."""
    binary = shutil.which("chromium") or "/usr/bin/chromium"
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (os.access(binary, os.X_OK) and os.access(driver, os.X_OK)):
        pytest.fail("Chromium or chromium-driver is missing: run deploy/local/browser.sh install (./dev test does)")
    return binary, driver


@asynccontextmanager
async def chromium(request: pytest.FixtureRequest, width: int, height: int, *,
                   viewport: bool = False, mobile: bool = False) -> AsyncIterator[Browser]:
    """A fresh headless Debian Chromium (zh-CN) with a width×height window, quit afterwards; `viewport`: the page
    itself gets width×height (the window's frame would otherwise take some of it), as a phone's if `mobile`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    binary, driver_path = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--lang=zh-CN", "--force-device-scale-factor=1",
                "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = await asyncio.wait_for(asyncio.to_thread(
        webdriver.Chrome, options=options, service=DriverService(executable_path=driver_path)), 60)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        if viewport:
            await asyncio.wait_for(asyncio.to_thread(driver.execute_cdp_cmd, "Emulation.setDeviceMetricsOverride",
                                                     {"width": width, "height": height, "deviceScaleFactor": 1,
                                                      "mobile": mobile}), 30)
        yield Browser(driver, request.node.name.replace("/", "_"))
    finally:
        await asyncio.wait_for(asyncio.to_thread(driver.quit), 30)


@pytest.fixture
async def browser(request: pytest.FixtureRequest) -> AsyncIterator[Browser]:
    """A fresh headless Chromium (1920×1080, zh-CN), quit after the test."""
    async with chromium(request, 1920, 1080) as browser:
        yield browser

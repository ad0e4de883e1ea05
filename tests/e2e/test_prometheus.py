"""A real Prometheus, started by deploy/local/prometheus.sh with the shipped config and rules, scrapes the four
services and supervision's live-figures app over HTTP: every target up, the key series move when cases flow,
and a service that stops shows as down.

The services run in this process (the `street` fixture, plus the live app on the same topics), each HTTP app
served by uvicorn on a free loopback port; they share one metrics registry, so every port shows all four services' series (the `service` label
tells them apart) and counters from earlier tests of the run: the assertions compare with a baseline read
through Prometheus before the reports go in, or select this test's own topic prefix.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import AsyncIterator, Callable

import httpx
import pytest
import uvicorn

from services.supervision.live.bootstrap import build as build_live
from shared.settings import REPO_ROOT, Settings
from tests.e2e.conftest import TERMINAL_TOKEN, free_port

pytestmark = pytest.mark.e2e

SCRIPT = REPO_ROOT / "deploy" / "local" / "prometheus.sh"
ALERTS = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "wangge.json"
SERVICES = ("intake", "routing", "supervision", "notify")
JOBS = (*SERVICES, "live")
REPORTS = 3
POINT = {"lon": 117.575168, "lat": 34.871845}  # 市社家宿舍, unit grid 3704020010010201


@contextlib.asynccontextmanager
async def serving(app) -> AsyncIterator[tuple[int, uvicorn.Server]]:
    """The app on a free loopback port until the block ends (or the caller stops the server)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        await asyncio.wait_for(_until(lambda: server.started), 20)
        yield port, server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


@contextlib.asynccontextmanager
async def live_figures(settings: Settings) -> AsyncIterator[object]:
    """supervision's live-figures app (faust) following this test's wangge.cases; yields its HTTP app."""
    service = build_live(settings, manage_runtime=False)
    await asyncio.wait_for(service.runtime.start(), 60)
    try:
        await service.runtime.wait_until_consuming(60)
        yield service.app
    finally:
        await asyncio.wait_for(service.runtime.stop(), 60)


async def _until(ready: Callable[[], bool]) -> None:
    while not ready():
        await asyncio.sleep(0.05)


async def script(action: str, env: dict[str, str]) -> str:
    """Run deploy/local/prometheus.sh ACTION; its output, or a failure with it."""
    process = await asyncio.create_subprocess_exec(str(SCRIPT), action, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, f"prometheus.sh {action} failed:\n{output.decode()}"
    return output.decode()


class PromAPI:
    """Prometheus's HTTP API."""

    def __init__(self, port: int):
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10)

    async def get(self, path: str, **params: str) -> dict:
        response = await self.http.get(path, params=params)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", f"{path} {params}: {response.text}"
        return body["data"]

    async def query(self, expr: str) -> list[dict]:
        return (await self.get("/api/v1/query", query=expr))["result"]

    async def value(self, expr: str) -> float | None:
        """The single value of an instant query, None when it has no result."""
        result = await self.query(expr)
        assert len(result) <= 1, f"{expr} gives {len(result)} series"
        return float(result[0]["value"][1]) if result else None

    async def eventually(self, what: str, check: Callable[[], object], timeout: float = 90) -> None:
        """Poll until the async check returns true; a failure naming `what` after `timeout` seconds."""
        last: object = None

        async def poll() -> None:
            nonlocal last
            while not (last := await check()):
                await asyncio.sleep(0.5)

        try:
            await asyncio.wait_for(poll(), timeout)
        except asyncio.TimeoutError:
            pytest.fail(f"{what}: not within {timeout} s (last: {last!r})")


def report(external_id: str) -> dict:
    return {"source": "terminal", "external_id": external_id, "category": "CM04",
            "description": "垃圾箱损坏，垃圾外溢", "location": POINT, "address": None,
            "reporter": {"name": "李先生", "phone": "13900001001"}, "coordinator": None,
            "media": [], "observed_at": "2026-11-27T09:12:00+08:00"}


def key_series(prefix: str) -> dict[str, tuple[str, int]]:
    """What must move when REPORTS reports flow through: PromQL (one series) and by how much at least."""
    cases = f'{prefix}wangge.cases'
    return {
        "intake produced case.accepted": (
            f'max(wangge_messages_produced_total{{service="intake", topic="{cases}", type="case.accepted"}})', REPORTS),
        "routing consumed case.accepted": (
            f'max(wangge_messages_consumed_total{{service="routing", topic="{cases}", type="case.accepted"}})', REPORTS),
        "routing produced task.assigned": (
            f'max(sum by (job) (wangge_messages_produced_total{{service="routing", topic=~"{prefix}wangge[.]tasks[.].+", '
            f'type="task.assigned"}}))', REPORTS),
        "supervision handled case.dispatched": (
            'max(wangge_handler_seconds_count{service="supervision", type="case.dispatched"})', REPORTS),
        "intake's outbox relayed": ('max(wangge_outbox_relayed_total{service="intake"})', 2 * REPORTS),
        "acknowledgements sent": (
            'max(sum by (job) (wangge_notify_deliveries_total{service="notify", kind="acknowledgement", state="sent"}))',
            REPORTS),
        "acknowledgements delivered to the gateway": (
            'max(sum by (job) (wangge_notify_delivery_attempts_total{service="notify", outcome="delivered"}))', REPORTS),
        # the live app starts with this test: its figures are this test's cases alone
        "live app followed the case events": ('max(wangge_live_events_total)', 3 * REPORTS),
        "live app counts the open cases": ('max(wangge_live_open_cases)', REPORTS),
    }


async def test_prometheus_scrapes_every_service_sees_cases_flow_and_a_service_go_down(street, tmp_path: Path):
    if not shutil.which("prometheus"):
        pytest.fail("prometheus not found: run deploy/local/prometheus.sh install")
    prefix = street.settings.topic_prefix
    async with contextlib.AsyncExitStack() as stack:
        ports, servers = {}, {}
        for name in SERVICES:
            ports[name], servers[name] = await stack.enter_async_context(serving(getattr(street, name).app))
        live_app = await stack.enter_async_context(live_figures(street.settings))
        ports["live"], servers["live"] = await stack.enter_async_context(serving(live_app))
        prometheus_port = free_port()
        env = {**os.environ, "WANGGE_STATE_DIR": str(tmp_path / "state"),
               "WANGGE_PROMETHEUS_PORT": str(prometheus_port), "WANGGE_PROMETHEUS_SCRAPE_INTERVAL": "1s",
               **{f"WANGGE_{name.upper()}_PORT": str(port) for name, port in ports.items()}}
        await script("start", env)
        stack.push_async_callback(script, "stop", env)
        prom = PromAPI(prometheus_port)
        stack.push_async_callback(prom.http.aclose)

        # The shipped config, with this test's ports: one job per service, all up.
        async def all_up() -> dict[str, str] | None:
            targets = (await prom.get("/api/v1/targets"))["activeTargets"]
            health = {t["labels"]["job"]: t["health"] for t in targets}
            return health if health == {**{name: "up" for name in JOBS}, "prometheus": "up"} else None

        await prom.eventually("every target up", all_up, timeout=60)
        status = await script("status", env)
        assert status.startswith("prometheus: running") and f"{len(JOBS) + 1}/{len(JOBS) + 1} targets up" in status
        assert "reloaded" in await script("start", env)  # ./dev up again: the running one takes the config anew
        for name, port in ports.items():
            assert await prom.value(f'up{{job="{name}", instance="127.0.0.1:{port}"}}') == 1.0
        # the page an operator opens (Debian's package serves the classic UI)
        page = await prom.http.get("/classic/targets")
        assert page.status_code == 200 and all(f"127.0.0.1:{port}/metrics" in page.text for port in ports.values())
        # ... with every alert rule of deploy/prometheus/alerts.yml loaded
        loaded = {rule["name"] for group in (await prom.get("/api/v1/rules"))["groups"] for rule in group["rules"]}
        assert loaded == set(re.findall(r"^\s+- alert: (\w+)$", ALERTS.read_text(encoding="utf-8"), re.M))

        # Cases flow: the key series move by at least what the reports cause.
        series = key_series(prefix)
        baseline = {what: (await prom.value(expr)) or 0.0 for what, (expr, _) in series.items()}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['intake']}", timeout=10,
                                     headers={"Authorization": f"Bearer {TERMINAL_TOKEN}"}) as intake:
            for _ in range(REPORTS):
                response = await intake.post("/api/v1/reports", json=report(f"SZT-PROM-{uuid.uuid4().hex[:8]}"))
                assert response.status_code == 201, response.text

        for what, (expr, at_least) in series.items():
            async def moved(expr=expr, start=baseline[what], at_least=at_least) -> float | None:
                now = await prom.value(expr)
                return now if now is not None and now - start >= at_least else None

            await prom.eventually(f"{what} ({expr}) up by {at_least} from {baseline[what]}", moved)

        # Each consumer of this test's wangge.cases reports its lag per partition.
        lag = await prom.query(f'wangge_consumer_lag{{topic="{prefix}wangge.cases"}}')
        assert {"routing", "supervision", "notify"} <= {series["metric"]["service"] for series in lag}

        # Every expression of the dashboard is valid PromQL on this Prometheus.
        for expr in dashboard_expressions():
            await prom.query(expr)

        # notify stops answering: its target goes down, the others stay up, the alert rule sees it.
        servers["notify"].should_exit = True

        async def notify_down() -> bool:
            return await prom.value(f'up{{job="notify"}}') == 0.0

        await prom.eventually("up{job=notify} at 0", notify_down, timeout=60)
        for name in ("intake", "routing", "supervision", "live"):
            assert await prom.value(f'up{{job="{name}"}}') == 1.0

        async def alert_pending_or_firing() -> list[dict]:
            return [a for a in (await prom.get("/api/v1/alerts"))["alerts"]
                    if a["labels"]["alertname"] == "WanggeServiceDown" and a["labels"]["job"] == "notify"]

        await prom.eventually("WanggeServiceDown for notify pending", alert_pending_or_firing, timeout=60)
        alert = (await alert_pending_or_firing())[0]
        assert alert["state"] in {"pending", "firing"} and alert["labels"]["severity"] == "critical"
        assert "notify" in alert["annotations"]["summary"]


def dashboard_expressions() -> list[str]:
    """Every PromQL expression of the Grafana dashboard, with Grafana's interval variables filled in."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert exprs, "the dashboard has no queries"
    return [e.replace("$__rate_interval", "1m").replace("$__interval", "15s").replace("$__range", "1h") for e in exprs]

"""The live figures process on a free port with its tables recovered, and case events as the services put them on
wangge.cases: for the tests of the live figures (and of their access and their streams)."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, AsyncIterator

import uvicorn

from shared.clock import now
from shared.contracts import Envelope
from shared.contracts.cases import CaseAccepted, CaseClosed, CaseDispatched, CaseReported
from shared.contracts.common import TimeLimit
from shared.settings import Settings
from shared.topics import Topics
from services.supervision.live import metrics
from services.supervision.live.bootstrap import build
from services.supervision.live.streams import LiveOptions
from tests.e2e.conftest import free_port
from tests.support import grant, publish

OPERATOR = "live-operator-token"
TERMINAL = "live-terminal-token"
MASKED_PHONE = "139****1001"


class Live:
    """A live process running in the test's event loop: its service, HTTP server and base URL."""

    def __init__(self, service: Any, server: uvicorn.Server, base: str):
        self.service, self.server, self.base = service, server, base
        self.streams = service.runtime.streams


@asynccontextmanager
async def live_process(settings: Settings, *, port: int | None = None, advertise: bool = False,
                       grants: tuple[str, ...] = ("operator", "terminal"), monkeypatch: Any = None) -> AsyncIterator[Live]:
    """The live process (faust app + HTTP) on `port` (a free one if None), its tables recovered, with OPERATOR and
    TERMINAL granted as `grants` names them. `advertise`: its URL advertised to its group, as several instances need.
    A second one in this process leaves /metrics to the first (`monkeypatch`: Prometheus' registry is one a process)."""
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    if monkeypatch is not None:
        monkeypatch.setattr(metrics, "register", lambda streams: None)
    service = build(settings, manage_runtime=False,
                    options=LiveOptions(spike_threshold=3, advertised_url=base if advertise else None))
    await asyncio.wait_for(service.runtime.start(), 60)
    server = uvicorn.Server(uvicorn.Config(service.app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off", timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve())
    try:
        await service.runtime.wait_until_consuming(90)
        if "operator" in grants:
            await grant(settings, service, token=OPERATOR, name="指挥中心值班员", role="operator")
        if "terminal" in grants:
            await grant(settings, service, token=TERMINAL, name="网格员终端", role="terminal",
                        worker_id="W001", device_id="SZT-0001")
        await asyncio.wait_for(until(lambda: server.started), 20)
        yield Live(service, server, base)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)
        await asyncio.wait_for(service.runtime.stop(), 60)


@asynccontextmanager
async def running_live(settings: Settings, *, grant_tokens: bool = True) -> AsyncIterator[str]:
    """The live process on a free port, its tables recovered (OPERATOR and TERMINAL granted); yields its base URL."""
    async with live_process(settings, grants=("operator", "terminal") if grant_tokens else ()) as live:
        yield live.base


async def until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.05)


class Cases:
    """Case events as the services put them on wangge.cases."""

    def __init__(self, settings: Settings):
        self.bootstrap = settings.kafka_bootstrap
        self.topic = Topics(settings.topic_prefix).cases
        self.sent: list[Envelope] = []
        self.at = now() - timedelta(seconds=5)

    async def send(self, envelope: Envelope) -> None:
        self.sent.append(envelope)
        await publish(self.bootstrap, self.topic, envelope, key=envelope.case_id)

    async def reported(self, case_id: str, case_no: str, category: str | None, unit_grid: str | None) -> None:
        await self.send(CaseReported(
            case_no=case_no, source="terminal", external_id=f"SZT-{case_no}", category=category,
            description="三号楼东侧箱体破裂", reporter={"name": "李**", "phone": MASKED_PHONE},
            observed_at=self.at, unit_grid=unit_grid).envelope(source="intake", case_id=case_id, occurred_at=self.at))

    async def accepted(self, case_id: str, case_no: str, category: str, unit_grid: str) -> None:
        await self.reported(case_id, case_no, category, unit_grid)
        await self.send(CaseAccepted(case_no=case_no, category=category, unit_grid=unit_grid, description="三号楼东侧箱体破裂")
                        .envelope(source="intake", case_id=case_id, occurred_at=self.at))

    async def dispatched(self, case_id: str, case_no: str, category: str, unit_grid: str, due_at: datetime) -> None:
        await self.accepted(case_id, case_no, category, unit_grid)
        await self.send(CaseDispatched(
            case_no=case_no, owner="huanwei", owner_name="环卫所", category=category, unit_grid=unit_grid,
            priority="normal", time_limit=TimeLimit(value=4, unit="work_hours"), dispatched_at=self.at,
            due_at=due_at).envelope(source="routing", case_id=case_id, occurred_at=self.at))

    async def closed(self, case_id: str, case_no: str, at: datetime | None = None) -> None:
        at = at or self.at
        await self.send(CaseClosed(case_no=case_no, owner="huanwei", outcome="resolved", result="已更换",
                                   by="operator:值班员", closed_at=at, on_time=True)
                        .envelope(source="supervision", case_id=case_id, occurred_at=at))

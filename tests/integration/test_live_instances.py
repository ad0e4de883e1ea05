"""Several live-figures processes in one consumer group, each holding some partitions of the tables: whichever is
asked answers the whole street's figures, identical to what one instance alone answers for the same events; with a
member that holds partitions but does not answer, an honest 503 naming the partitions."""
from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, AsyncIterator

import httpx
import pytest
import uvicorn

from services.supervision.live import metrics
from services.supervision.live.bootstrap import build
from services.supervision.live.streams import LiveOptions
from tests.live_running import OPERATOR, Cases, until
from tests.support import free_ports, grant

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


class Live:
    def __init__(self, service: Any, server: uvicorn.Server, base: str):
        self.service, self.server, self.base = service, server, base
        self.streams = service.runtime.streams


@asynccontextmanager
async def live_instance(settings, port: int, *, grant_token: bool, monkeypatch=None) -> AsyncIterator[Live]:
    """One live process (faust app + HTTP) on `port`, advertising http://127.0.0.1:<port> to its group. A second
    one in this process leaves /metrics to the first (`monkeypatch`: Prometheus' registry is one per process)."""
    base = f"http://127.0.0.1:{port}"
    if monkeypatch is not None:
        monkeypatch.setattr(metrics, "register", lambda streams: None)
    service = build(settings, manage_runtime=False, options=LiveOptions(spike_threshold=3, advertised_url=base))
    await asyncio.wait_for(service.runtime.start(), 60)
    server = uvicorn.Server(uvicorn.Config(service.app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off", timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve())
    try:
        await service.runtime.wait_until_consuming(90)
        if grant_token:
            await grant(settings, service, token=OPERATOR, name="指挥中心值班员", role="operator")
        await asyncio.wait_for(until(lambda: server.started), 20)
        yield Live(service, server, base)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)
        await asyncio.wait_for(service.runtime.stop(), 60)


async def answer(http: httpx.AsyncClient, live: Live) -> httpx.Response:
    return await http.get(f"{live.base}/api/v1/live/figures", headers={"Authorization": f"Bearer {OPERATOR}"})


def without_time(figures: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in figures.items() if k != "generated_at"}


async def the_same(http: httpx.AsyncClient, live: Live, want: dict[str, Any], within: float = 90) -> None:
    last: Any = None

    async def poll() -> None:
        nonlocal last
        while True:
            got = await answer(http, live)
            last = (got.status_code, got.text[:300])
            if got.status_code == 200 and without_time(got.json()) == want:
                return
            await asyncio.sleep(0.5)

    try:
        await asyncio.wait_for(poll(), within)
    except asyncio.TimeoutError:
        raise AssertionError(f"{live.base} answered {last}") from None


async def test_any_of_two_instances_answers_the_whole_street_and_503_names_what_nobody_answered(isolated, demo_street, monkeypatch):
    settings = isolated
    cases = Cases(settings)
    units = sorted(g.code for g in demo_street.level("unit"))[:6]
    day = cases.at.strftime("%Y%m%d")
    port_a, port_b = free_ports(2)
    async with live_instance(settings, port_a, grant_token=True) as a, httpx.AsyncClient(timeout=20) as http:
        # 40 cases over six grids (and so over every partition): a fifth closed, some late, one held without a place.
        for n in range(40):
            case_id = str(uuid.uuid4())
            late = n % 7 == 0
            await cases.dispatched(case_id, f"{day}-8{n:03d}", ("CM04", "MD01")[n % 2], units[n % 6],
                                   cases.at + (timedelta(minutes=-1) if late else timedelta(days=2)))
            if n % 5 == 0:
                await cases.closed(case_id, f"{day}-8{n:03d}")
        await cases.reported(str(uuid.uuid4()), f"{day}-8999", None, None)

        async def alone_done() -> dict[str, Any]:
            while True:
                got = await answer(http, a)
                if got.status_code == 200 and got.json()["open_now"] == 33 and sum(got.json()["today"]["street"]) == 40:
                    return got.json()
                await asyncio.sleep(0.3)
        one = without_time(await asyncio.wait_for(alone_done(), 60))
        assert one["overdue_now"] == 4 and one["spikes"]  # late and open: n = 7, 14, 21, 28
        assert a.streams.alone()

        async with live_instance(settings, port_b, grant_token=False, monkeypatch=monkeypatch) as b:
            # The group now has two members, each holding part of the partitions: both answer the whole street.
            await the_same(http, a, one)
            await the_same(http, b, one)
            shares = [a.streams.share(), b.streams.share()]
            held = [set(s["partitions"]["cases"]) for s in shares]
            assert held[0] and held[1] and not held[0] & held[1], held  # each a part, none both
            assert held[0] | held[1] == set(range(a.streams.cases.partitions))
            assert not a.streams.alone() and not b.streams.alone()

            # B keeps its partitions in the group but stops answering: A cannot answer for them — an honest 503.
            b.server.should_exit = True
            async def b_gone() -> None:
                while True:
                    try:
                        await http.get(f"{b.base}/healthz")
                    except httpx.TransportError:
                        return
                    await asyncio.sleep(0.2)
            await asyncio.wait_for(b_gone(), 20)
            refused = await answer(http, a)
            assert refused.status_code == 503, refused.text
            detail = refused.json()["detail"]
            assert "cases " + ", ".join(map(str, sorted(held[1]))) in detail and "请稍后重试" in detail, detail

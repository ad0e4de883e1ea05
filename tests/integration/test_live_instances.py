"""Several live-figures processes in one consumer group, each holding some partitions of the tables: whichever is
asked answers the whole street's figures, identical to what one instance alone answers for the same events; with a
member that holds partitions but does not answer, an honest 503 naming the partitions."""
from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.live_running import OPERATOR, Cases, Live, live_process
from tests.support import free_ports

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


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
    async with live_process(settings, port=port_a, advertise=True, grants=("operator",)) as a, httpx.AsyncClient(timeout=20) as http:
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

        async with live_process(settings, port=port_b, advertise=True, grants=(), monkeypatch=monkeypatch) as b:
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

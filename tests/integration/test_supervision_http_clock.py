"""Supervision's HTTP answers read the clock the service was built with (build(clock=…)), the one its handlers fold
and fire by: a test moves that clock and sees "overdue now", the figures' moment and "the last N days" follow it,
without sleeping and without moving every service's time."""
from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from services.supervision.bootstrap import build
from shared.clock import now
from shared.contracts.cases import CaseReported
from shared.contracts.common import TimeLimit
from shared.messagebus import MessageBus
from shared.worktime import WorkCalendar
from tests.integration.test_supervision_bus import message
from tests.supervision_cases import UNIT_GRID, accepted, dispatched
from tests.support import StoppedClock, grant, running

pytestmark = pytest.mark.integration

INSIDE = {"lon": 117.575168, "lat": 34.871845}  # in unit grid 3704020010010201


async def test_http_answers_follow_the_clock_the_service_was_built_with(isolated):
    start = now().replace(microsecond=0)
    clock = StoppedClock(start)
    case_id, case_no = uuid.uuid4().hex, f"2026{uuid.uuid4().int % 10**10:010d}"
    due = WorkCalendar(zone=start.tzinfo).deadline(start, 4, "work_hours")
    reported = CaseReported(case_no=case_no, source="terminal", external_id=f"ext-{case_no}", category="CM04",
                            description="垃圾箱破损", observed_at=start, unit_grid=UNIT_GRID, location=INSIDE,
                            ).envelope(source="intake", case_id=case_id)
    events = [reported, accepted(case_id, case_no),
              dispatched(case_id, case_no, owner="huanwei", category="CM04",
                         limit=TimeLimit(value=4, unit="work_hours"), at=start, due=due)]
    async with running(build(isolated, manage_runtime=False, clock=clock)) as service:
        bus: MessageBus = service.app.state.cases_bus
        async with service.runtime.uow() as uow:
            await asyncio.wait_for(bus.handle_batch([message(e) for e in events], uow), 30)
            await uow.commit()
        await grant(isolated, service, token="clock-operator", name="值班员", role="operator")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://t",
                                     headers={"Authorization": "Bearer clock-operator"}) as http:

            async def answers() -> dict[str, Any]:
                async def get(path: str, **params: Any) -> Any:
                    got = await asyncio.wait_for(http.get(path, params=params), 20)
                    assert got.status_code == 200, (path, got.text)
                    return got.json()
                day = start.date().isoformat()
                return {
                    "case": (await get(f"/api/v1/cases/{case_no}"))["overdue"],
                    "listed": [c["case_no"] for c in (await get("/api/v1/cases", overdue="true"))["cases"]],
                    "found": [c["overdue"] for c in (await get("/api/v1/cases/search", case_no=case_no))["cases"]],
                    "summary": await get("/api/v1/stats/summary"),
                    "stats": await get("/api/v1/stats", **{"from": day, "to": day, "by": "owner"}),
                    "public": [c["case_no"] for c in (await get("/api/v1/public/cases", days=1))["cases"]],
                }

            before = await answers()
            clock.move(due - start + timedelta(days=2))  # two days past the deadline (the wall clock has not moved)
            after = await answers()

    assert (before["case"], before["listed"], before["found"]) == (False, [], [False])
    assert (after["case"], after["listed"], after["found"]) == (True, [case_no], [True])
    assert before["summary"]["overdue_now"] == 0 and after["summary"]["overdue_now"] == 1
    assert after["summary"]["as_of"] == clock.at.isoformat()
    assert before["stats"]["total"]["overdue_now"] == 0 and after["stats"]["total"]["overdue_now"] == 1
    assert (before["stats"]["as_of"], after["stats"]["as_of"]) == (start.isoformat(), clock.at.isoformat())
    # reported "today" by the built clock, and no longer within the last day once it moved on
    assert (before["public"], after["public"]) == ([case_no], [])

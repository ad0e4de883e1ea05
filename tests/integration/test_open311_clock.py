"""Intake's Open311 answers read the clock the service was built with (build(clock=…)), the one its commands number
and stamp reports by: a comment's time is that clock's, and "the last 24 hours" of updates and "the last 90 days" of
requests count back from it — a test moves it instead of waiting a day or moving every service's time."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from services.intake.bootstrap import build
from shared.clock import now
from tests.integration.test_open311 import FORM, client
from tests.support import StoppedClock, grant, running

pytestmark = pytest.mark.integration


async def test_a_comment_s_time_and_the_default_windows_follow_the_built_clock(isolated):
    start = now().replace(microsecond=0)
    clock = StoppedClock(start)
    async with running(build(isolated, manage_runtime=False, clock=clock)) as intake:
        await grant(isolated, intake, token="o311-clock-portal", name="市民网站", role="hotline")
        async with client(intake) as http:
            async def get(path: str) -> list[dict]:
                got = await asyncio.wait_for(http.get(path), 10)
                assert got.status_code == 200, got.text
                return got.json()

            posted = await asyncio.wait_for(
                http.post("/open311/v2/requests.json", data={**FORM, "api_key": "o311-clock-portal"}), 20)
            assert posted.status_code == 201, posted.text
            case_no = posted.json()[0]["service_request_id"]
            commented = await asyncio.wait_for(http.post("/open311/v2/servicerequestupdates.json", data={
                "api_key": "o311-clock-portal", "service_request_id": case_no, "update_id": "clock-1",
                "description": "还没修好"}), 20)
            assert commented.status_code == 201, commented.text
            comment_id = commented.json()[0]["update_id"]

            def updates(answer: list[dict]) -> list[str]:
                return [u["updated_datetime"] for u in answer
                        if u["service_request_id"] == case_no and "还没修好" in (u["description"] or "")]

            async def comment_read_back() -> None:  # the update is case.commented, read back from wangge.cases
                while not updates(await get("/open311/v2/servicerequestupdates.json")):
                    await asyncio.sleep(0.1)
            await asyncio.wait_for(comment_read_back(), 20)

            def requests(answer: list[dict]) -> list[str]:
                return [r["requested_datetime"] for r in answer if r["service_request_id"] == case_no]

            today = (updates(await get("/open311/v2/servicerequestupdates.json")),
                     requests(await get("/open311/v2/requests.json")))
            # a day and a second later (start_date ≤ updated_datetime: at exactly a day it is still in; the wall
            # clock has not moved)
            clock.move(timedelta(hours=24, seconds=1))
            next_day = (updates(await get("/open311/v2/servicerequestupdates.json")),
                        requests(await get("/open311/v2/requests.json")))
            clock.move(timedelta(days=90))
            months_later = requests(await get("/open311/v2/requests.json"))
        stamped = await intake.runtime.pool.fetchval("SELECT created_at FROM case_comments WHERE comment_id = $1",
                                                     comment_id)

    assert stamped == start  # the comment's time is the built clock's
    assert [datetime.fromisoformat(t) for t in today[0]] == [start]
    assert [datetime.fromisoformat(t) for t in today[1]] == [start]
    assert next_day == ([], today[1])  # out of the updates' last 24 hours, still among the last 90 days' requests
    assert months_later == []

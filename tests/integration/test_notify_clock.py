"""notify reads the clock it was built with (build(clock=…)) in its HTTP commands as in its handlers: the survey
window a closing opened ends when that clock passes it — on the web and by SMS — without sleeping through the
window and without moving every service's time."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from shared.clock import now
from tests.notify_cases import A_PHONE, B_PHONE, C_PHONE, closed_case
from tests.notify_running import GATEWAY_TOKEN, notify_running
from tests.support import StoppedClock, TopicReader

pytestmark = pytest.mark.integration


async def test_the_survey_window_closes_when_the_built_clock_passes_it(isolated):
    start = now().replace(microsecond=0)
    clock = StoppedClock(start)
    async with notify_running(isolated, clock) as notify:
        topics = notify.service.runtime.topics
        async with TopicReader(notify.settings.kafka_bootstrap, topics.replies) as replies:
            a, b, c = [await closed_case(notify, replies, phone, at=start) for phone in (A_PHONE, B_PHONE, C_PHONE)]
        closes = await notify.service.runtime.pool.fetchval(
            "SELECT closes_at FROM surveys WHERE case_no = $1", a.no)
        assert closes > start + timedelta(days=1)  # the window in force, counted from the closing

        async with TopicReader(notify.settings.kafka_bootstrap, topics.cases) as cases, \
                notify.http("10.0.0.9") as resident:
            async def answer(case, phone: str) -> tuple[int, str]:
                got = await asyncio.wait_for(resident.post(f"/api/v1/surveys/{case.no}",
                                                           json={"phone": phone, "verdict": "satisfied"}), 10)
                return got.status_code, got.text

            clock.move(closes - start - timedelta(seconds=1))  # the window's last second
            last_second = await answer(a, A_PHONE)
            clock.move(timedelta(seconds=1))  # its end (the wall clock has not moved)
            at_the_end = await answer(b, B_PHONE)
            by_sms = await asyncio.wait_for(resident.post("/api/v1/sms/inbound", json={"from": C_PHONE, "text": "1"},
                                                          headers={"X-Gateway-Token": GATEWAY_TOKEN}), 10)
            event = await cases.wait_for(lambda m: m.get("type") == "case.survey-answered"
                                         and m["data"]["case_no"] == a.no, timeout=20)
        answered = await notify.service.runtime.pool.fetchval(
            "SELECT answered_at FROM surveys WHERE case_no = $1", a.no)

    assert last_second[0] == 200, last_second[1]
    assert answered == closes - timedelta(seconds=1)  # answered at the built clock's moment, and so dated
    assert datetime.fromisoformat(event["occurred_at"]) == answered and event["data"]["within_window"] is True
    assert at_the_end[0] == 409 and "window" in at_the_end[1], at_the_end
    assert by_sms.status_code == 200, by_sms.text
    assert by_sms.json() == {"matched": False, "reason": "no open survey for this phone"}

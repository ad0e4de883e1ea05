"""Supervision's people (sessions) read the clock the service was built with (build(clock=…)): a session the clock
has passed the end of is no longer anyone's, without sleeping through its hours and without moving every service's
time."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from services.supervision.bootstrap import build
from shared.clock import now
from tests.integration.test_sessions import add, http, sign_in
from tests.support import StoppedClock, running

pytestmark = pytest.mark.integration


async def test_a_session_ends_when_the_built_clock_passes_its_end(isolated):
    start = now().replace(microsecond=0)
    clock = StoppedClock(start)
    async with running(build(isolated, manage_runtime=False, clock=clock)) as supervision:
        await add(supervision, "clock-operator", "operator")
        signed = await asyncio.wait_for(sign_in(supervision, "clock-operator"), 30)
        assert signed.status_code == 200, signed.text
        cookie = signed.cookies["wangge_session"]
        hours = timedelta(hours=isolated.session_hours)
        # the end is counted from the built clock's moment
        assert signed.json()["expires_at"] == (start + hours).isoformat()

        async def who() -> int:
            async with http(supervision, cookie) as client:
                return (await asyncio.wait_for(client.get("/api/v1/sessions"), 20)).status_code

        clock.move(hours - timedelta(seconds=1))
        still = await who()
        clock.move(timedelta(seconds=1))  # exactly its end: no longer valid
        ended = await who()
    assert (still, ended) == (200, 401)

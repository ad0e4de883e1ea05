"""Quiet hours on the real broker and database, notify built with a clock of its own (build(clock=…)): at 23:00 the
acknowledgement goes at once, the progress SMS waits; at 08:00 it goes out, once — the test moves that clock and
asks the worker's own question instead of sleeping through polls."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from shared.clock import now
from shared.contracts.cases import CaseSigned
from services.notify.metrics import QUIET_HOURS_HELD, SERVICE
from tests.notify_running import PHONE, case_events, until, notify_running
from tests.support import StoppedClock

pytestmark = pytest.mark.integration


@pytest.fixture
async def isolated(isolated):
    """The street's own quiet hours (22:00–08:00): the rest of the suite runs without them (tests/conftest.py)."""
    yield isolated.model_copy(update={"street_config_dir": None})


def _held_count() -> float:
    return QUIET_HOURS_HELD.labels(SERVICE, "progress")._value.get()


def _next(hour: int, after=None):
    moment = (after or now()).replace(hour=hour, minute=0, second=0, microsecond=0)
    return moment if moment > (after or now()) else moment + timedelta(days=1)


async def test_quiet_hours_hold_a_progress_sms_until_morning_and_release_it_once(isolated):
    night = _next(23)
    morning = _next(8, after=night)
    clock = StoppedClock(night)
    held_before = _held_count()
    async with notify_running(isolated, clock) as notify:
        worker = notify.service.app.state.delivery_worker
        case_id, case_no, reported, accepted = case_events(PHONE)
        signed = CaseSigned(case_no=case_no, owner="市政所", update_id="u-1").envelope(source="supervision",
                                                                                    case_id=case_id)
        await notify.cases(reported, accepted, signed)
        pool = notify.service.runtime.pool
        # The acknowledgement is urgent (the resident just reported): sent in the night.
        await asyncio.wait_for(until(lambda: len(notify.sms_to(PHONE)) == 1), 20)
        assert case_no in notify.sms_to(PHONE)[0]["text"]

        async def progress():
            return await pool.fetchrow("SELECT state, attempts, next_attempt_at FROM deliveries "
                                       "WHERE case_no = $1 AND kind = 'progress'", case_no)

        async def held():
            while (row := await progress()) is None or row["next_attempt_at"] < night:
                await asyncio.sleep(0.1)
            return row
        row = await asyncio.wait_for(held(), 20)
        assert (row["state"], row["attempts"], row["next_attempt_at"]) == ("pending", 0, morning)
        assert _held_count() == held_before + 1  # wangge_notify_quiet_hours_held_total
        # Still the night: the worker's claim takes nothing (nothing is due before the morning)
        at_night = await asyncio.wait_for(worker.claim(), 10)
        assert at_night.taken == 0 and len(notify.sms_to(PHONE)) == 1

        clock.move(morning + timedelta(minutes=1) - night)
        await asyncio.wait_for(until(lambda: len(notify.sms_to(PHONE)) == 2), 20)
        assert "签收" in notify.sms_to(PHONE)[1]["text"] or case_no in notify.sms_to(PHONE)[1]["text"]

        async def sent():
            while (await progress())["state"] != "sent":
                await asyncio.sleep(0.05)
        await asyncio.wait_for(sent(), 10)
        # once: recorded sent, nothing is due again
        again = await asyncio.wait_for(worker.claim(), 10)
    assert again.taken == 0 and len(notify.sms_to(PHONE)) == 2

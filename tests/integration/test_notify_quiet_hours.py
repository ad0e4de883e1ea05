"""Quiet hours on the real broker and database: at 23:00 (a moved clock) the acknowledgement goes at once, the
progress SMS waits; at 08:00 it goes out, once."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from shared.clock import move_clock, now
from shared.contracts.cases import CaseSigned
from services.notify.metrics import QUIET_HOURS_HELD, SERVICE
from tests.integration.test_notify_service import PHONE, Notify, _case, _until, notify  # noqa: F401 — fixture

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


async def test_quiet_hours_hold_a_progress_sms_until_morning_and_release_it_once(notify: Notify):
    night = _next(23)
    held_before = _held_count()
    move_clock(night)
    try:
        case_id, case_no, reported, accepted = _case(PHONE)
        signed = CaseSigned(case_no=case_no, owner="市政所", update_id="u-1").envelope(source="supervision",
                                                                                    case_id=case_id)
        await notify.cases(reported, accepted, signed)
        pool = notify.service.runtime.pool
        # The acknowledgement is urgent (the resident just reported): sent in the night.
        await asyncio.wait_for(_until(lambda: len(notify.sms_to(PHONE)) == 1), 20)
        assert case_no in notify.sms_to(PHONE)[0]["text"]

        async def progress():
            return await pool.fetchrow("SELECT state, attempts, next_attempt_at FROM deliveries "
                                       "WHERE case_no = $1 AND kind = 'progress'", case_no)

        async def held():
            while (row := await progress()) is None or row["next_attempt_at"] < night:
                await asyncio.sleep(0.1)
            return row
        row = await asyncio.wait_for(held(), 20)
        morning = _next(8, after=night)
        assert (row["state"], row["attempts"], row["next_attempt_at"]) == ("pending", 0, morning)
        assert _held_count() == held_before + 1  # wangge_notify_quiet_hours_held_total
        await asyncio.sleep(1.5)  # three polls of the worker: still not sent
        assert len(notify.sms_to(PHONE)) == 1

        move_clock(morning + timedelta(minutes=1))
        await asyncio.wait_for(_until(lambda: len(notify.sms_to(PHONE)) == 2), 20)
        assert "签收" in notify.sms_to(PHONE)[1]["text"] or case_no in notify.sms_to(PHONE)[1]["text"]
        await asyncio.sleep(1.0)
        assert len(notify.sms_to(PHONE)) == 2 and (await progress())["state"] == "sent"
    finally:
        move_clock(None)

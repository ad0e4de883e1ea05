"""Case numbers from reserved blocks, on the real database: unique per day across instances, consecutive at a
street's pace, a number taken and not used goes to the next report, and what is never used is a listed gap."""
from __future__ import annotations

import asyncio
import uuid
from datetime import date

import httpx
import pytest

from services.intake.adapters.case_numbers import CaseNumbers
from services.intake.bootstrap import build
from tests.support import grant

pytestmark = pytest.mark.integration

DAY = date(2026, 12, 2)


@pytest.fixture
async def intake(isolated):
    service = build(isolated, manage_runtime=False)
    await asyncio.wait_for(service.runtime.start(), 60)
    try:
        await grant(isolated, service, token="test-terminal", name="网格员001终端", role="terminal",
                    worker_id="W001", device_id="SZT-0001")
        yield service
    finally:
        await service.runtime.stop()


def report(external_id: str) -> dict:
    return {"source": "terminal", "external_id": external_id, "category": "CM04", "description": "垃圾箱破损",
            "location": {"lon": 117.575168, "lat": 34.871845}, "media": [],
            "observed_at": "2026-11-27T09:00:00+08:00"}


async def test_one_by_one_the_numbers_are_consecutive_and_reserved_one_at_a_time(intake):
    numbers = CaseNumbers(lambda: intake.runtime.pool)
    taken = []
    for _ in range(3):
        taken.append(await asyncio.wait_for(numbers.take(DAY), 10))
        await asyncio.sleep(1.1)  # a street's pace: nothing taken in the last second, a block of one
    assert taken == [1, 2, 3]
    blocks = await intake.runtime.pool.fetch("SELECT first, last FROM case_number_blocks WHERE day = $1 ORDER BY first", DAY)
    assert [(b["first"], b["last"]) for b in blocks] == [(1, 1), (2, 2), (3, 3)]


async def test_two_instances_taking_at_once_never_share_a_number_and_the_unused_rest_is_a_listed_gap(intake):
    first, second = CaseNumbers(lambda: intake.runtime.pool), CaseNumbers(lambda: intake.runtime.pool)
    taken = await asyncio.wait_for(asyncio.gather(*(n.take(DAY) for _ in range(150) for n in (first, second))), 30)
    assert len(set(taken)) == 300
    pool = intake.runtime.pool
    reserved = await pool.fetchval("SELECT last FROM case_numbers WHERE day = $1", DAY)
    assert reserved >= 300
    blocks = await pool.fetch("SELECT first, last FROM case_number_blocks WHERE day = $1 ORDER BY first", DAY)
    covered = [n for b in blocks for n in range(b["first"], b["last"] + 1)]
    assert covered == list(range(1, reserved + 1))  # every reserved number is in exactly one recorded block
    assert any(b["last"] > b["first"] for b in blocks)  # at this pace, blocks of more than one
    # No case carries these numbers (none was stored): every reserved number is listed as a gap.
    gaps = await pool.fetch("SELECT sequence, case_no FROM case_number_gaps WHERE day = $1 ORDER BY sequence", DAY)
    assert [g["sequence"] for g in gaps] == list(range(1, reserved + 1))
    assert gaps[0]["case_no"] == "20261202-0001"


async def test_a_number_given_back_goes_to_the_next_report(intake):
    numbers = CaseNumbers(lambda: intake.runtime.pool)
    one = await asyncio.wait_for(numbers.take(DAY), 10)
    two = await asyncio.wait_for(numbers.take(DAY), 10)
    numbers.give_back(DAY, one)
    assert await asyncio.wait_for(numbers.take(DAY), 10) == one
    assert await asyncio.wait_for(numbers.take(DAY), 10) > two


async def test_concurrent_reports_over_http_get_distinct_numbers_and_a_repeat_leaves_no_gap(intake):
    transport = httpx.ASGITransport(app=intake.app)
    tag = uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(transport=transport, base_url="http://intake", timeout=30,
                                 headers={"Authorization": "Bearer test-terminal"}) as http:
        answers = await asyncio.wait_for(
            asyncio.gather(*(http.post("/api/v1/reports", json=report(f"{tag}-{n}")) for n in range(60))), 60)
        assert all(a.status_code == 201 for a in answers), [a.text for a in answers if a.status_code != 201]
        again = await http.post("/api/v1/reports", json=report(f"{tag}-0"))
        assert again.status_code == 200 and again.json()["duplicate"]
        later = await http.post("/api/v1/reports", json=report(f"{tag}-later"))
    case_nos = [a.json()["case_no"] for a in answers]
    assert len(set(case_nos)) == 60
    day = case_nos[0].split("-")[0]
    sequences = sorted(int(c.split("-")[1]) for c in case_nos + [later.json()["case_no"]])
    # The repeated report took a number and gave it back: the next report has it, and nothing is missing.
    assert sequences == list(range(1, 62))
    gaps = await intake.runtime.pool.fetchval("SELECT count(*) FROM case_number_gaps WHERE to_char(day, 'YYYYMMDD') = $1",
                                             day)
    reserved = await intake.runtime.pool.fetchval("SELECT max(last) FROM case_number_blocks WHERE to_char(day, 'YYYYMMDD') = $1",
                                                 day)
    assert gaps == reserved - 61  # only the rest of the last block, still this instance's to hand out

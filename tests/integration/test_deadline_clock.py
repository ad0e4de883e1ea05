"""The deadline poller reads the handed clock, not PostgreSQL's now(): a test moves the clock past a deadline and the
notices fire at once, without waiting hours (issue 17's drills)."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from shared.clock import move_clock, now
from shared.topics import Topics, ensure_topics
from tests.supervision_cases import OWNER, open_case
from tests.supervision_cases import start
from tests.support import TopicReader

pytestmark = pytest.mark.integration


async def test_a_deadline_hours_away_fires_when_the_clock_is_moved_past_it(isolated):
    topics = Topics(isolated.topic_prefix)
    await ensure_topics(isolated.kafka_bootstrap, [topics.for_owner(OWNER)])
    service = await start(isolated)
    pool = service.runtime.pool
    try:
        case_id, case_no = await open_case(isolated, pool)  # 4 hours to handle it, from now
        async with TopicReader(isolated.kafka_bootstrap, topics.cases) as seen:
            assert not await seen.all_within(2.0, lambda m: m.get("case_id") == case_id and m["type"] == "case.overdue")
            move_clock(now() + timedelta(hours=5))
            try:
                overdue = await seen.wait_for(lambda m: m.get("case_id") == case_id and m["type"] == "case.overdue"
                                              and m["data"]["stage"] == "handling", 20)
                clock = await pool.fetchrow("SELECT warned_at, overdue_at FROM clocks WHERE case_id = $1 "
                                            "AND kind = 'handling'", case_id)
            finally:
                move_clock(None)
        assert overdue["data"]["case_no"] == case_no
        # Stamped on the moved clock (hours ahead of PostgreSQL's now()), not by the database.
        assert clock["overdue_at"] - now() > timedelta(hours=4)
        assert clock["warned_at"] is not None
    finally:
        move_clock(None)
        await asyncio.wait_for(service.runtime.stop(), 30)

"""Attack: an owner answers a task ahead of its dispatch, hoping the held update is applied to a case that then goes to
another owner (issue 17: updates that overtake the case log are held). It is decided against the dispatch that came:
refused as "not a task of" that owner, telling nothing of the holder; the case stays unsigned."""
from __future__ import annotations

import asyncio

import pytest

from shared.contracts.tasks import TaskAccepted
from shared.topics import Topics, ensure_topics
from tests.integration.test_held_updates import dispatch_of, held, new_case
from tests.supervision_cases import OTHER, OWNER, state_of, update
from tests.supervision_cases import accepted, reported, send, start
from tests.support import TopicReader

pytestmark = pytest.mark.integration


async def test_a_held_update_of_an_owner_the_case_is_not_dispatched_to_is_refused_when_the_dispatch_comes(isolated):
    topics = Topics(isolated.topic_prefix)
    await ensure_topics(isolated.kafka_bootstrap, [topics.for_owner(OWNER), topics.for_owner(OTHER)])
    service = await start(isolated)
    pool = service.runtime.pool
    try:
        case_id, case_no = new_case()
        await send(isolated, reported(case_id, case_no), accepted(case_id, case_no))
        await state_of(pool, case_id, "accepted")
        async with TopicReader(isolated.kafka_bootstrap, topics.tasks(OTHER)) as seen:
            early = await update(isolated, case_id, TaskAccepted(case_no=case_no, owner=OTHER))
            await held(pool, case_id, 1)
            await send(isolated, dispatch_of(case_id, case_no, owner=OWNER))
            told = await seen.wait_for(lambda m: m["type"] == "task.update-refused" and m["data"]["update_id"] == early.id)
            assert f"is not a task of {OTHER}" in told["data"]["reason"] and OWNER not in told["data"]["reason"]
        await state_of(pool, case_id, "dispatched")
        assert await pool.fetchval("SELECT count(*) FROM held_updates") == 0
        assert not await pool.fetchval("SELECT count(*) FROM case_events WHERE case_id = $1 AND type = 'case.signed'",
                                       case_id)

        # Known and held by OWNER: another owner's update is refused at once, never held.
        async with TopicReader(isolated.kafka_bootstrap, topics.tasks(OTHER)) as seen:
            again = await update(isolated, case_id, TaskAccepted(case_no=case_no, owner=OTHER))
            await seen.wait_for(lambda m: m["type"] == "task.update-refused" and m["data"]["update_id"] == again.id)
        assert await pool.fetchval("SELECT count(*) FROM held_updates") == 0
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)

"""A resident's comment in supervision (case.commented on the real Kafka and PostgreSQL): folded into the history
and forwarded to the holder as task.commented once, even when the event is delivered twice; a case no owner holds
keeps it in the history only."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from shared.contracts.cases import CaseCommented
from shared.topics import Topics, ensure_topics
from tests.supervision_cases import OWNER, open_case
from tests.supervision_cases import accepted, reported, send, start
from tests.support import TopicReader, eventually

pytestmark = pytest.mark.integration


async def test_a_comment_reaches_the_holder_once_and_a_case_without_holder_keeps_it(isolated):
    topics = Topics(isolated.topic_prefix)
    await ensure_topics(isolated.kafka_bootstrap, [topics.for_owner(OWNER)])
    service = await start(isolated)
    pool = service.runtime.pool
    try:
        case_id, case_no = await open_case(isolated, pool)
        comment = CaseCommented(case_no=case_no, comment_id=str(uuid.uuid4()), text="还没修好，请尽快（139****1001）",
                                media=[], channel="open311").envelope(source="intake", case_id=case_id)
        async with TopicReader(isolated.kafka_bootstrap, topics.tasks(OWNER)) as tasks:
            await send(isolated, comment)
            await send(isolated, comment)  # redelivered: the same event id
            note = await tasks.wait_for(lambda m: m["type"] == "task.commented" and m["case_id"] == case_id, 20)
            assert note["data"]["comment_id"] == comment.data["comment_id"] and "还没修好" in note["data"]["text"]
            with pytest.raises(TimeoutError):  # no second note for the redelivered event
                await tasks.wait_for(lambda m: m["type"] == "task.commented" and m["case_id"] == case_id
                                     and m["id"] != note["id"], 4)
        history = await pool.fetchval("SELECT count(*) FROM case_events WHERE case_id = $1 AND type = 'case.commented'",
                                      case_id)
        assert history == 1

        # Accepted, not yet dispatched: nobody holds it; the operators see the comment in the history.
        idle_id, idle_no = f"case-{uuid.uuid4().hex[:8]}", f"20261128-{uuid.uuid4().int % 10000:04d}"
        await send(isolated, reported(idle_id, idle_no), accepted(idle_id, idle_no))
        idle = CaseCommented(case_no=idle_no, comment_id=str(uuid.uuid4()), text="有人管吗", channel="web")
        await send(isolated, idle.envelope(source="intake", case_id=idle_id))
        await eventually(lambda: pool.fetchval(
            "SELECT count(*) = 1 FROM case_events WHERE case_id = $1 AND type = 'case.commented'", idle_id))
        await asyncio.sleep(1)
        async with TopicReader(isolated.kafka_bootstrap, topics.tasks(OWNER)) as again:
            with pytest.raises(TimeoutError):
                await again.wait_for(lambda m: m["type"] == "task.commented" and m["case_id"] == idle_id, 3)
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)

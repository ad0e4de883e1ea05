"""An owner's update that overtakes the case log (issue 17's drills): the owner reads its task on its own topic and
answers on wangge.task-updates before supervision has folded the case's dispatch from wangge.cases. It is held, applied
in the transaction that folds the dispatch (in arrival order), and refused with its reason only after the bound."""
from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from shared.clock import move_clock, now
from shared.contracts.common import TimeLimit
from shared.contracts.tasks import TaskAccepted, TaskProgress
from shared.topics import Topics, ensure_topics
from tests.supervision_cases import OTHER, OWNER, state_of, update
from tests.supervision_cases import accepted, dispatched, reported, send, start
from tests.support import TopicReader, eventually

pytestmark = pytest.mark.integration


def new_case() -> tuple[str, str]:
    return f"case-{uuid.uuid4().hex[:8]}", f"20261206-{uuid.uuid4().int % 10000:04d}"


async def held(pool, case_id: str, n: int) -> None:
    await eventually(lambda: pool.fetchval("SELECT count(*) = $2 FROM held_updates WHERE case_id = $1", case_id, n))


def dispatch_of(case_id: str, case_no: str, owner: str = OWNER):
    at = now().replace(microsecond=0)
    return dispatched(case_id, case_no, owner=owner, category="CM04", limit=TimeLimit(value=4, unit="hours"),
                      at=at, due=at + timedelta(hours=4))


async def test_updates_that_come_before_the_dispatch_are_applied_when_it_is_folded_in_their_order(isolated):
    topics = Topics(isolated.topic_prefix)
    await ensure_topics(isolated.kafka_bootstrap, [topics.for_owner(OWNER)])
    service = await start(isolated)
    pool = service.runtime.pool
    try:
        case_id, case_no = new_case()
        async with TopicReader(isolated.kafka_bootstrap, topics.cases, topics.tasks(OWNER),
                               topics.rejected_for(topics.task_updates)) as seen:
            # The owner answers first: supervision has not seen the case at all yet.
            sign = await update(isolated, case_id, TaskAccepted(case_no=case_no, owner=OWNER))
            note = await update(isolated, case_id, TaskProgress(case_no=case_no, owner=OWNER, note="已到现场"))
            await held(pool, case_id, 2)
            await send(isolated, reported(case_id, case_no), accepted(case_id, case_no))
            await state_of(pool, case_id, "accepted")
            assert await pool.fetchval("SELECT count(*) FROM held_updates WHERE case_id = $1", case_id) == 2
            await send(isolated, dispatch_of(case_id, case_no))
            await state_of(pool, case_id, "in_progress")
            await held(pool, case_id, 0)
            mine = await seen.all_within(2.0, lambda m: m.get("case_id") == case_id and m["source"] == "supervision")
            assert [m["type"] for m in mine if m["_topic"] == topics.cases] == ["case.signed", "case.progress-reported"]
            assert [m["data"]["update_id"] for m in mine if m["_topic"] == topics.cases] == [sign.id, note.id]
            assert not [m for m in mine if m["type"] == "task.update-refused"]
            assert not [m for m in seen.seen if m[0] == topics.rejected_for(topics.task_updates)]
        history = await pool.fetch("SELECT type FROM case_events WHERE case_id = $1 ORDER BY seq", case_id)
        assert [r["type"] for r in history][-3:] == ["case.dispatched", "case.signed", "case.progress-reported"]
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)


async def test_a_held_update_whose_case_never_comes_is_refused_with_its_reason_after_the_bound(make_settings):
    settings = make_settings(held_update_seconds=600.0, held_update_poll_seconds=3600.0)  # expired by hand below
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings.kafka_bootstrap, [*topics.fixed(), topics.for_owner(OWNER)])
    service = await start(settings)
    pool, updates = service.runtime.pool, service.app.state.updates
    try:
        case_id, case_no = new_case()
        async with TopicReader(settings.kafka_bootstrap, topics.tasks(OWNER)) as seen:
            ghost = await update(settings, case_id, TaskAccepted(case_no=case_no, owner=OWNER))
            await held(pool, case_id, 1)
            assert await asyncio.wait_for(updates.expire_held(), 10) == 0  # within the bound: still waiting
            assert not await seen.all_within(1.0, lambda m: m["type"] == "task.update-refused")
            move_clock(now() + timedelta(seconds=601))
            try:
                assert await asyncio.wait_for(updates.expire_held(), 10) == 1
            finally:
                move_clock(None)
            refused = await seen.wait_for(lambda m: m["type"] == "task.update-refused"
                                          and m["data"]["update_id"] == ghost.id)
            assert f"no case {case_no} is known" in refused["data"]["reason"]
            assert refused["_topic"] == topics.tasks(OWNER) and refused["_key"] == case_id
        assert await pool.fetchval("SELECT count(*) FROM held_updates") == 0
        # The case coming after all is folded as usual; the refused update stays refused (it was decided once).
        await send(settings, reported(case_id, case_no), accepted(case_id, case_no), dispatch_of(case_id, case_no))
        await state_of(pool, case_id, "dispatched")
    finally:
        move_clock(None)
        await asyncio.wait_for(service.runtime.stop(), 30)


async def test_an_owner_answering_for_cases_that_never_come_fills_no_table_beyond_its_bound(make_settings):
    # An owner's system (a bug, a stolen key) floods wangge.task-updates with updates for cases nobody reported: each
    # would wait WANGGE_HELD_UPDATE_SECONDS. Beyond the owner's bound they are refused at once with the reason, and
    # another owner's update for a case not dispatched yet is still held.
    settings = make_settings(held_updates_per_owner=3, held_update_poll_seconds=3600.0)
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings.kafka_bootstrap, [*topics.fixed(), topics.for_owner(OWNER), topics.for_owner(OTHER)])
    service = await start(settings)
    pool = service.runtime.pool
    try:
        async with TopicReader(settings.kafka_bootstrap, topics.tasks(OWNER)) as seen:
            # One after another (each decided before the next): updates of cases on different partitions are
            # decided in concurrent transactions, which may each see the owner one under the bound.
            ghosts, sent, refused = [new_case() for _ in range(5)], [], []
            for n, (case_id, case_no) in enumerate(ghosts):
                sent.append(await update(settings, case_id, TaskAccepted(case_no=case_no, owner=OWNER)))
                if n < 3:
                    await held(pool, case_id, 1)
                else:
                    refused.append(await seen.wait_for(lambda m, e=sent[-1]: m["type"] == "task.update-refused"
                                                       and m["data"]["update_id"] == e.id))
            assert all("3 updates of owner" in r["data"]["reason"] and "暂存更新已达上限" in r["data"]["reason"]
                       for r in refused), refused
            assert await pool.fetchval("SELECT count(*) FROM held_updates WHERE owner = $1", OWNER) == 3
            held_ids = {r["update_id"] for r in await pool.fetch("SELECT update_id FROM held_updates")}
            assert held_ids == {e.id for e in sent[:3]}
            # Another owner is not held back by this one's flood.
            case_id, case_no = new_case()
            theirs = await update(settings, case_id, TaskAccepted(case_no=case_no, owner=OTHER))
            await held(pool, case_id, 1)
            assert await pool.fetchval("SELECT update_id FROM held_updates WHERE case_id = $1", case_id) == theirs.id
            # A held one released by its case's dispatch makes room: the owner's next is held again.
            first_id, first_no = ghosts[0]
            await send(settings, reported(first_id, first_no), accepted(first_id, first_no),
                       dispatch_of(first_id, first_no))
            await state_of(pool, first_id, "in_progress")
            late_id, late_no = new_case()
            await update(settings, late_id, TaskAccepted(case_no=late_no, owner=OWNER))
            await held(pool, late_id, 1)
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)

"""Supervision's case log on the message bus, on the real database and Kafka: a partition's batch of case events is
folded as a set — the statements do not grow with the batch —, a replayed batch changes nothing, a case's events keep
their order inside a batch, and a poison message in the middle of one is set aside while the rest apply."""
from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from shared.clock import now
from shared.contracts import Envelope, parse_event
from shared.contracts.cases import CaseSigned
from shared.contracts.common import TimeLimit
from shared.messagebus import Message, MessageBus
from shared.runtime import Service
from shared.topics import Topics
from shared.worktime import WorkCalendar
from tests.supervision_cases import accepted, dispatched, reported, send, start
from tests.support import TopicReader, eventually, handlers_statements

pytestmark = pytest.mark.integration


def message(envelope: Envelope) -> Message[Any]:
    return Message(envelope, parse_event(envelope))


def case_events(n: int) -> tuple[list[str], list[Message[Any]]]:
    """n new cases as intake and routing publish them on one partition: each case's report and acceptance together,
    the next case's after them, then the dispatches (so runs of one type are one message long)."""
    at = now().replace(microsecond=0)
    due = WorkCalendar(zone=at.tzinfo).deadline(at, 4, "work_hours")
    ids = [uuid.uuid4().hex for _ in range(n)]
    numbers = [f"2026{uuid.uuid4().int % 10**10:010d}" for _ in ids]
    first = [e for case_id, no in zip(ids, numbers) for e in (reported(case_id, no), accepted(case_id, no))]
    then = [dispatched(case_id, no, owner="huanwei", category="CM04", limit=TimeLimit(value=4, unit="work_hours"),
                       at=at, due=due) for case_id, no in zip(ids, numbers)]
    return ids, [message(e) for e in first + then]


async def handle(service: Service, messages: list[Message[Any]]) -> int:
    """Hand the messages to supervision's case bus as one batch in one unit of work; the statements it took."""
    bus: MessageBus = service.app.state.cases_bus
    statements: list[str] = []
    log = lambda record: statements.append(record.query)  # noqa: E731
    async with service.runtime.uow() as uow:
        uow.conn.add_query_logger(log)
        try:
            await asyncio.wait_for(bus.handle_batch(messages, uow), 30)
            await uow.commit()
        finally:
            uow.conn.remove_query_logger(log)
    return handlers_statements(statements)


@pytest.fixture
async def supervision(isolated):
    service = await start(isolated)
    try:
        yield service
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)


async def test_a_batch_of_case_events_costs_the_same_statements_for_one_case_and_for_forty(supervision: Service):
    pool = supervision.runtime.pool
    await handle(supervision, case_events(1)[1])  # anything read once into a cache is read now
    one_ids, one_batch = case_events(1)
    one = await handle(supervision, one_batch)
    forty_ids, forty_batch = case_events(40)
    forty = await handle(supervision, forty_batch)
    print(f"statements: {one} for one case (3 events), {forty} for forty (120 events)")
    assert len(forty_batch) == 120 and forty <= one <= 12, (one, forty)
    rows = await pool.fetch("SELECT state, events_seen, owner, dispatch_count FROM cases WHERE case_id = ANY($1)",
                            forty_ids + one_ids)
    assert len(rows) == 41 and {tuple(r) for r in rows} == {("dispatched", 3, "huanwei", 1)}
    history = await pool.fetchval("SELECT count(*) FROM case_events WHERE case_id = ANY($1)", forty_ids)
    clocks = await pool.fetch("SELECT kind, state, count(*) AS n FROM clocks WHERE case_id = ANY($1) GROUP BY 1, 2",
                              forty_ids)
    assert history == 120
    assert {(c["kind"], c["state"]): c["n"] for c in clocks} == {
        ("dispatch", "stopped"): 40, ("handling", "running"): 40, ("sign", "running"): 40}


async def test_a_batch_handled_twice_changes_the_cases_once(supervision: Service):
    pool = supervision.runtime.pool
    ids, batch = case_events(5)
    await handle(supervision, batch + batch[:3])  # redelivered within the batch too
    before = await pool.fetch("SELECT case_id, state, events_seen, dispatch_count, updated_at FROM cases "
                              "WHERE case_id = ANY($1) ORDER BY case_id", ids)
    await handle(supervision, batch)  # the same batch again: a replay after a crash before the offsets
    after = await pool.fetch("SELECT case_id, state, events_seen, dispatch_count, updated_at FROM cases "
                             "WHERE case_id = ANY($1) ORDER BY case_id", ids)
    assert [tuple(r) for r in after] == [tuple(r) for r in before]
    assert {r["events_seen"] for r in after} == {3} and {r["dispatch_count"] for r in after} == {1}
    assert await pool.fetchval("SELECT count(*) FROM case_events WHERE case_id = ANY($1)", ids) == 15


async def test_a_case_s_events_keep_their_order_within_a_batch(supervision: Service):
    pool = supervision.runtime.pool
    (a, b), batch = case_events(2)
    no_a = batch[0].event.case_no
    signed_a = message(CaseSigned(case_no=no_a, owner="huanwei", update_id="u-1")
                       .envelope(source="supervision", case_id=a))
    late_accept_a = message(accepted(a, no_a))  # after the dispatch: refused by the state, kept in the history
    # a: reported, accepted, dispatched, signed, accepted again; b's events between them.
    await handle(supervision, [batch[0], batch[1], batch[2], batch[4], batch[3], signed_a, batch[5],
                               late_accept_a])
    history = await pool.fetch("SELECT type, effect, state_after FROM case_events WHERE case_id = $1 ORDER BY seq", a)
    assert [(h["type"], h["effect"], h["state_after"]) for h in history] == [
        ("case.reported", "moved", "reported"), ("case.accepted", "moved", "accepted"),
        ("case.dispatched", "moved", "dispatched"), ("case.signed", "moved", "in_progress"),
        ("case.accepted", "refused", "in_progress")]
    case = await pool.fetchrow("SELECT state, signed_at, events_seen FROM cases WHERE case_id = $1", a)
    assert case["state"] == "in_progress" and case["signed_at"] is not None and case["events_seen"] == 5
    clocks = dict(await pool.fetch("SELECT kind, state FROM clocks WHERE case_id = $1", a))
    # the sign stage opened by the dispatch, then stopped by the signing in the same batch
    assert clocks == {"dispatch": "stopped", "sign": "stopped", "handling": "running"}
    assert await pool.fetchval("SELECT state FROM cases WHERE case_id = $1", b) == "dispatched"


async def test_a_poison_message_in_the_middle_of_a_batch_is_set_aside_and_the_rest_applies(isolated):
    ids, batch = case_events(3)
    poison = Envelope.new("case.reported", 1, batch[0].envelope.data, source="intake")  # names no case
    envelopes = [m.envelope for m in batch]
    # Published before supervision starts, so that its consumer reads them as one batch.
    await send(isolated, *envelopes[:3], poison, *envelopes[3:])
    service = await start(isolated)
    try:
        pool = service.runtime.pool
        # Each case is on its own partition: on a cluster their batches come from different brokers, one by one.
        async def all_dispatched():
            rows = await pool.fetch("SELECT state FROM cases WHERE case_id = ANY($1) AND state = 'dispatched'", ids)
            return rows if len(rows) == 3 else None

        states = await eventually(all_dispatched, timeout=60)
        assert len(states) == 3
        topics = Topics(isolated.topic_prefix)
        async with TopicReader(isolated.kafka_bootstrap, topics.rejected_for(topics.cases)) as rejected:
            set_aside = await rejected.wait_for(lambda m: poison.id in str(m.get("data", {})), timeout=30)
        assert "case_id" in set_aside["data"]["reason"]
        assert await pool.fetchval("SELECT count(*) FROM case_events WHERE event_id = $1", poison.id) == 0
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)


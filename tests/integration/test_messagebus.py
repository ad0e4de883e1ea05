"""The message bus (shared/messagebus.py) on the real database, and routing's handlers on it: a partition's batch is
claimed in one statement, handed to each handler as a set in the partition's order, and a batch of first dispatches
costs the same few statements whatever its size."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import pytest

from shared.clock import now, street_zone
from shared.contracts import Envelope, InvalidMessage, parse_event
from shared.contracts.cases import CaseAccepted, CaseClosed
from shared.messagebus import Message, MessageBus
from shared.runtime import Service
from shared.settings import Settings
from services.routing.bootstrap import build
from tests.integration.test_routing_service import accepted, routing  # noqa: F401 — the fixture
from tests.support import StoppedClock, handlers_statements, running

pytestmark = pytest.mark.integration


def message(envelope: Envelope) -> Message[Any]:
    return Message(envelope, parse_event(envelope))


def closed(case_id: str, case_no: str) -> Envelope:
    return CaseClosed(case_no=case_no, owner="huanwei", outcome="resolved", result="已清理", by="operator:检查员",
                      closed_at=now(), on_time=True).envelope(source="supervision", case_id=case_id)


async def _accepting(messages: list[Message[Any]], uow: Any) -> None: ...


async def _closing(messages: list[Message[Any]], uow: Any) -> None: ...


def test_runs_keep_the_partitions_order():
    a1, a2, c, a3 = (message(accepted(uuid.uuid4().hex, "CM04")), message(accepted(uuid.uuid4().hex, "CM04")),
                     message(closed(uuid.uuid4().hex, "20261127-1")), message(accepted(uuid.uuid4().hex, "CM04")))
    bus = MessageBus(consumer="test", events={CaseAccepted: [_accepting], CaseClosed: [_closing]}, deps={})
    runs = bus.runs_of_one_handling([a1, a2, c, a3])
    assert [[m.id for m in run] for run in runs] == [[a1.id, a2.id], [c.id], [a3.id]]


def test_types_sharing_their_handler_reach_it_as_one_run():
    """A handler registered for several types (intake's follow_cases) takes a batch mixing them at once, so it locks
    the batch's cases in one sorted statement: run by run, the locks would be taken in batch order, in several
    statements, and could deadlock with another consumer locking the same cases."""
    a1, c, a2 = (message(accepted(uuid.uuid4().hex, "CM04")), message(closed(uuid.uuid4().hex, "20261127-1")),
                 message(accepted(uuid.uuid4().hex, "CM04")))
    bus = MessageBus(consumer="test", events={CaseAccepted: [_accepting], CaseClosed: [_accepting]}, deps={})
    assert [[m.id for m in run] for run in bus.runs_of_one_handling([a1, c, a2])] == [[a1.id, c.id, a2.id]]
    both = MessageBus(consumer="test", events={CaseAccepted: [_accepting, _closing], CaseClosed: [_accepting]},
                      deps={})
    assert [len(run) for run in both.runs_of_one_handling([a1, c, a2])] == [1, 1, 1]


async def test_an_event_twice_in_a_batch_or_replayed_later_reaches_its_handler_once(routing: Service):
    seen: list[str] = []

    async def record(messages: list[Message[CaseAccepted]], uow: Any) -> None:
        seen.extend(m.id for m in messages)

    bus = MessageBus(consumer=f"test-{uuid.uuid4().hex[:8]}", events={CaseAccepted: [record]}, deps={})
    first, second = message(accepted(uuid.uuid4().hex, "CM04")), message(accepted(uuid.uuid4().hex, "CM04"))
    for batch in ([first, second, first], [second]):
        async with routing.runtime.uow() as uow:
            await asyncio.wait_for(bus.handle_batch(batch, uow), 10)
            await uow.commit()
    assert seen == [first.id, second.id]


def test_a_handler_asking_for_what_nobody_provides_fails_when_the_bus_is_built():
    async def needs_a_mailbox(messages: list[Message[CaseAccepted]], uow: Any, mailbox: Any) -> None: ...

    with pytest.raises(TypeError, match="needs mailbox"):
        MessageBus(consumer="test", events={CaseAccepted: [needs_a_mailbox]}, deps={})


async def _handle(service: Service, messages: list[Message[Any]]) -> int:
    """Hand the messages to routing's bus as one batch in one unit of work; the statements it took."""
    bus: MessageBus = service.app.state.bus
    statements: list[str] = []
    logged = lambda record: statements.append(record.query)  # noqa: E731 — the same function added and removed
    async with service.runtime.uow() as uow:
        uow.conn.add_query_logger(logged)
        try:
            await asyncio.wait_for(bus.handle_batch(messages, uow), 30)
            await uow.commit()
        finally:
            uow.conn.remove_query_logger(logged)
    return handlers_statements(statements)


async def test_a_batch_of_first_dispatches_costs_the_same_statements_whatever_its_size(routing: Service):
    pool = routing.runtime.pool
    await _handle(routing, [message(accepted(uuid.uuid4().hex, "CM04"))])  # the rules read once into their cache
    one = await _handle(routing, [message(accepted(uuid.uuid4().hex, "CM04"))])
    forty_ids = [uuid.uuid4().hex for _ in range(40)]
    forty = await _handle(routing, [message(accepted(case_id, "CM04")) for case_id in forty_ids])
    assert forty <= one <= 10, (one, forty)
    rows = await pool.fetch("SELECT case_id, owner, occasion FROM dispatches WHERE case_id = ANY($1::text[])", forty_ids)
    assert sorted(r["case_id"] for r in rows) == sorted(forty_ids)
    assert {(r["owner"], r["occasion"]) for r in rows} == {("huanwei", "first")}
    routed = await pool.fetchval("SELECT count(*) FROM routed_cases WHERE case_id = ANY($1::text[]) AND holder = "
                                 "'huanwei'", forty_ids)
    outbox = await pool.fetchval("SELECT count(*) FROM outbox WHERE key = ANY($1::text[])", forty_ids)
    assert routed == 40 and outbox in (80, 0)  # case.dispatched + task.assigned each (the relay may have sent them)


async def test_in_one_batch_a_replayed_event_and_a_second_acceptance_dispatch_nothing_more(routing: Service):
    pool = routing.runtime.pool
    case_id, other = uuid.uuid4().hex, uuid.uuid4().hex
    first = accepted(case_id, "CM04")
    batch = [message(first), message(first), message(accepted(case_id, "CM04")), message(accepted(other, "MD01"))]
    await _handle(routing, batch)
    await _handle(routing, [message(first)])  # the same event in a later batch: a replay
    rows = await pool.fetch("SELECT case_id, cause_id FROM dispatches WHERE case_id = ANY($1::text[])", [case_id, other])
    assert sorted((r["case_id"], r["cause_id"]) for r in rows) == sorted([(case_id, first.id), (other, batch[3].id)])


async def test_a_closing_between_two_acceptances_keeps_its_place(routing: Service):
    pool = routing.runtime.pool
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    accept_a = accepted(a, "CM04")
    await _handle(routing, [message(accept_a), message(closed(a, accept_a.data["case_no"])),
                            message(accepted(b, "CM04"))])
    states = dict(await pool.fetch("SELECT case_id, status FROM routed_cases WHERE case_id = ANY($1::text[])", [a, b]))
    assert states == {a: "closed", b: "open"}


async def test_a_case_number_taken_by_another_case_in_the_same_batch_is_refused(routing: Service):
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    twin = accepted(b, "CM04", case_no=accepted(a, "CM04").data["case_no"])
    with pytest.raises(InvalidMessage, match="already belongs"):
        await _handle(routing, [message(accepted(a, "CM04")), message(twin)])


async def test_the_time_is_the_clock_the_bus_was_handed(isolated: Settings):
    """A test hands routing a clock of its own instead of waiting for the wall clock (or moving everyone's)."""
    at = datetime(2031, 3, 3, 9, 30, tzinfo=street_zone())  # a Monday morning, in work hours
    async with running(build(isolated, manage_runtime=False, clock=StoppedClock(at))) as service:
        case_id = uuid.uuid4().hex
        await _handle(service, [message(accepted(case_id, "CM04"))])
        row = await service.runtime.pool.fetchrow("SELECT dispatched_at, due_at FROM dispatches WHERE case_id = $1",
                                                  case_id)
    assert row["dispatched_at"] == at and row["due_at"] > at

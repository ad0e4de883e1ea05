"""Intake on its message buses (services/intake/bootstrap.py), on the real database and broker: a partition's batch of
reports becomes cases with the same few statements whatever its size, once however often it is handed in, numbered
and published in the partition's order; a report that cannot be a case in the middle of a batch is set aside alone;
the steps of intake's cases (wangge.cases) and the replies (wangge.replies) are handled as sets too."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from services.intake.bootstrap import build
from shared.clock import now, street_zone
from shared.contracts import Envelope, parse_event
from shared.contracts.cases import CaseAccepted, CaseClosed, CaseReopened
from shared.contracts.replies import ReplyIssued
from shared.messagebus import Message, MessageBus
from shared.runtime import Service
from shared.settings import Settings
from tests.integration.test_intake_service import intake, report_body  # noqa: F401 — the fixture
from tests.support import StoppedClock, TopicReader, handlers_statements, running

pytestmark = pytest.mark.integration

INSIDE = {"lon": 117.575168, "lat": 34.871845}  # in unit grid 3704020010010201


def message(envelope: Envelope) -> Message[Any]:
    return Message(envelope, parse_event(envelope))


def report(external_id: str, **fields: Any) -> Envelope:
    return Envelope.new("report.submitted", 1, report_body(external_id, **fields), source="terminal-gateway")


async def _handle(service: Service, bus: str, messages: list[Message[Any]]) -> int:
    """Hand the messages to one of intake's buses as one batch in one unit of work (as its consumer does); the
    statements it took on that connection."""
    handler: MessageBus = service.app.state.buses[bus]
    statements: list[str] = []

    def logged(record: Any) -> None:
        statements.append(record.query)

    async with service.runtime.uow() as uow:
        uow.conn.add_query_logger(logged)
        try:
            await asyncio.wait_for(handler.handle_batch(messages, uow), 30)
            await uow.commit()
        finally:
            uow.conn.remove_query_logger(logged)
    return handlers_statements(statements)


async def _blocks(service: Service) -> int:
    return await service.runtime.pool.fetchval("SELECT count(*) FROM case_number_blocks")


async def test_a_batch_of_reports_costs_the_same_statements_whatever_its_size(intake: Service):
    pool = intake.runtime.pool
    run = uuid.uuid4().hex[:8]
    one = await _handle(intake, "reports", [message(report(f"{run}-one"))])
    blocks = await _blocks(intake)
    forty_ids = [f"{run}-{i:02d}" for i in range(40)]
    forty = await _handle(intake, "reports", [message(report(i)) for i in forty_ids])
    # claims, which are cases already, the new rows, the outbox: the same for 1 and for 40 (before: about five a report)
    assert forty <= one <= 6, (one, forty)
    assert await _blocks(intake) - blocks <= 1  # the forty numbers reserved at once (on a connection of their own)
    rows = await pool.fetch("SELECT case_id, state, unit_grid FROM reports WHERE external_id = ANY($1::text[])",
                            forty_ids)
    assert len(rows) == 40 and {(r["state"], r["unit_grid"]) for r in rows} == {("accepted", "3704020010010201")}
    outbox = await pool.fetchval("SELECT count(*) FROM outbox WHERE key = ANY($1::text[])",
                                 [str(r["case_id"]) for r in rows])
    assert outbox in (120, 0)  # case.reported, contact.recorded, case.accepted each (the relay may have sent them)


async def test_a_batch_handed_in_twice_makes_its_cases_once_and_a_resent_report_is_one_case(intake: Service):
    pool = intake.runtime.pool
    run = uuid.uuid4().hex[:8]
    batch = [message(report(f"{run}-{i}")) for i in range(10)]
    resent = message(report(f"{run}-3"))  # the same report sent again by its sender, with a new event id
    await _handle(intake, "reports", [*batch, resent, batch[0]])
    await _handle(intake, "reports", batch)  # the batch replayed (a crash before the offsets were committed)
    await _handle(intake, "reports", [resent])  # and the resent one in a later batch
    rows = await pool.fetch("SELECT external_id, count(*) AS n FROM reports WHERE external_id LIKE $1 "
                            "GROUP BY external_id", f"{run}-%")
    assert {r["external_id"]: r["n"] for r in rows} == {f"{run}-{i}": 1 for i in range(10)}
    events = await pool.fetchval(
        "SELECT count(*) FROM outbox o JOIN reports r ON o.key = r.case_id::text WHERE r.external_id LIKE $1",
        f"{run}-%")
    assert events in (30, 0)


async def test_a_batch_is_numbered_and_published_in_the_partitions_order(intake: Service, isolated: Settings):
    pool = intake.runtime.pool
    run = uuid.uuid4().hex[:8]
    held = report(f"{run}-held", category=None)  # no category: held (case.reported only), between two accepted ones
    batch = [message(report(f"{run}-a")), message(held), message(report(f"{run}-b"))]
    async with TopicReader(isolated.kafka_bootstrap, intake.runtime.topics.cases) as cases:
        await _handle(intake, "reports", batch)
        rows = await pool.fetch("SELECT external_id, case_no, case_id::text AS case_id, state FROM reports "
                                "WHERE external_id LIKE $1 ORDER BY case_no", f"{run}-%")
        assert [r["external_id"] for r in rows] == [f"{run}-a", f"{run}-held", f"{run}-b"]
        assert [r["state"] for r in rows] == ["accepted", "reported", "accepted"]
        ids = {r["case_id"] for r in rows}
        for row in rows:  # each case's last event (the topic's partitions order each case, not the cases)
            last = "case.accepted" if row["state"] == "accepted" else "case.reported"
            await cases.wait_for(lambda m, r=row, t=last: m["type"] == t and m["case_id"] == r["case_id"], 30)
    mine = [(m[2]["case_id"], m[2]["type"]) for m in cases.seen if m[2].get("case_id") in ids]
    for row in rows:
        assert [t for c, t in mine if c == row["case_id"]] == (
            ["case.reported", "case.accepted"] if row["state"] == "accepted" else ["case.reported"])


async def test_a_report_that_cannot_be_a_case_in_the_middle_of_a_batch_is_set_aside_alone(intake: Service,
                                                                                         isolated: Settings):
    """Through the real consumer: 41 reports sent at once on one partition; the 21st lies outside the street. The
    batch fails as a set, is handled again message by message, and only that one goes to wangge.reports.rejected."""
    topics, pool = intake.runtime.topics, intake.runtime.pool
    run = uuid.uuid4().hex[:8]
    good = [report(f"{run}-{i:02d}") for i in range(40)]
    bad = report(f"{run}-far", location={"lon": 1.0, "lat": 1.0})
    sent = [*good[:20], bad, *good[20:]]
    async with TopicReader(isolated.kafka_bootstrap, topics.reports_rejected) as rejected:
        producer = AIOKafkaProducer(bootstrap_servers=isolated.kafka_bootstrap, enable_idempotence=True, linger_ms=50)
        await asyncio.wait_for(producer.start(), 20)
        try:
            for envelope in sent:  # one key, so one partition, in this order: one batch for the consumer
                await producer.send(topics.reports, envelope.to_json(), key=run.encode())
            await asyncio.wait_for(producer.flush(), 20)
        finally:
            await producer.stop()
        aside = await rejected.wait_for(lambda m: m.get("data", {}).get("original", {}).get("id") == bad.id, 60)
        assert "outside the street" in aside["data"]["reason"]

        async def all_stored() -> None:
            while await pool.fetchval("SELECT count(*) FROM reports WHERE external_id LIKE $1", f"{run}-%") < 40:
                await asyncio.sleep(0.1)

        await asyncio.wait_for(all_stored(), 60)
        others = await rejected.all_within(1.0, lambda m: m.get("data", {}).get("original", {}).get("id") in
                                           {e.id for e in good})
    assert others == []
    rows = await pool.fetch("SELECT external_id FROM reports WHERE external_id LIKE $1 ORDER BY case_no", f"{run}-%")
    assert [r["external_id"] for r in rows] == [e.data["external_id"] for e in good]  # numbered in the sent order


async def test_the_time_and_the_day_s_numbers_are_the_clock_the_bus_was_handed(isolated: Settings):
    at = datetime(2031, 3, 3, 9, 30, tzinfo=street_zone())
    async with running(build(isolated, manage_runtime=False, clock=StoppedClock(at))) as service:
        await _handle(service, "reports", [message(report("clock-1")), message(report("clock-2"))])
        rows = await service.runtime.pool.fetch("SELECT case_no, received_at FROM reports ORDER BY case_no")
    assert [(r["case_no"], r["received_at"]) for r in rows] == [("20310303-0001", at), ("20310303-0002", at)]


# ---- wangge.cases and wangge.replies ------------------------------------------------------------------------------

async def _cases(service: Service, count: int) -> list[tuple[str, str]]:
    run = uuid.uuid4().hex[:8]
    await _handle(service, "reports", [message(report(f"{run}-{i:02d}")) for i in range(count)])
    rows = await service.runtime.pool.fetch("SELECT case_id::text AS case_id, case_no FROM reports "
                                            "WHERE external_id LIKE $1 ORDER BY case_no", f"{run}-%")
    return [(r["case_id"], r["case_no"]) for r in rows]


def accepted(case_id: str, case_no: str) -> Envelope:
    return CaseAccepted(case_no=case_no, category="CM04", unit_grid="3704020010010201", description="垃圾箱破损",
                        location=INSIDE).envelope(source="intake", case_id=case_id)


def closed(case_id: str, case_no: str) -> Envelope:
    return CaseClosed(case_no=case_no, owner="huanwei", outcome="resolved", result="已清理", by="operator:检查员",
                      closed_at=now(), on_time=True).envelope(source="supervision", case_id=case_id)


def reopened(case_id: str, case_no: str) -> Envelope:
    return CaseReopened(case_no=case_no, owner="huanwei", reason="又坏了", by="resident").envelope(
        source="supervision", case_id=case_id)


async def test_a_batch_of_case_steps_costs_the_same_statements_whatever_its_size(intake: Service):
    pool = intake.runtime.pool
    cases = await _cases(intake, 41)
    batches = [[message(accepted(*cases[0]))], [message(accepted(*case)) for case in cases[1:]]]
    one = await _handle(intake, "cases", batches[0])
    forty = await _handle(intake, "cases", batches[1])
    assert forty <= one <= 6, (one, forty)  # claims, the cases locked, their last steps, the steps, the cases moved
    # (intake's own reader records the real case.accepted of these cases too, under their own ids)
    steps = await pool.fetchval("SELECT count(*) FROM case_updates WHERE update_id = ANY($1::text[])",
                                [m.id for batch in batches for m in batch])
    assert steps == 41


async def test_steps_of_one_case_in_one_batch_keep_their_order_and_a_replay_changes_nothing(intake: Service):
    pool = intake.runtime.pool
    (a, a_no), (b, b_no) = await _cases(intake, 2)
    batch = [message(accepted(a, a_no)), message(accepted(b, b_no)), message(closed(a, a_no)),
             message(reopened(a, a_no))]
    await _handle(intake, "cases", batch)
    await _handle(intake, "cases", batch)  # replayed
    # (intake's own reader records the real case.accepted of these cases too, under their own ids)
    rows = await pool.fetch("SELECT case_no, event_type FROM case_updates WHERE update_id = ANY($1::text[]) "
                            "ORDER BY seq", [m.id for m in batch])
    assert [r["event_type"] for r in rows if r["case_no"] == a_no] == ["case.accepted", "case.closed", "case.reopened"]
    assert [r["event_type"] for r in rows if r["case_no"] == b_no] == ["case.accepted"]
    states = dict(await pool.fetch("SELECT case_no, state FROM reports WHERE case_no = ANY($1::text[])", [a_no, b_no]))
    assert states == {a_no: "accepted", b_no: "accepted"}  # closed, then reopened: open again
    times = [r["occurred_at"] for r in await pool.fetch(
        "SELECT occurred_at FROM case_updates WHERE case_no = $1 ORDER BY seq", a_no)]  # never back in time
    assert times == sorted(times)


async def test_copies_of_a_reply_in_one_batch_make_one_update(intake: Service):
    pool = intake.runtime.pool
    (case_id, case_no), = await _cases(intake, 1)
    event_id = str(uuid.uuid4())

    def reply(to: str) -> Envelope:
        return ReplyIssued(case_no=case_no, kind="acknowledgement", channel="sms", to=to, text="您反映的问题已受理",
                           state="sent", delivery_id=uuid.uuid4().hex, event_id=event_id).envelope(
            source="notify", case_id=case_id)

    copies = [message(reply("139****1001")), message(reply("138****5678"))]
    await _handle(intake, "replies", copies)
    await _handle(intake, "replies", [message(reply("137****0000"))])  # a resend later: the same reply
    rows = await pool.fetch("SELECT description FROM case_updates WHERE case_no = $1 AND event_type = 'reply.issued'",
                            case_no)
    assert [r["description"] for r in rows] == ["答复居民：您反映的问题已受理"]

"""notify on the message bus (services/notify/bootstrap.py), on the real broker and database: a partition's batch of
case events or contacts costs the same few statements whatever its size (counted, as test_messagebus.py does for
routing), a replayed batch has its effects once, a case's events keep their order within a batch, and a poison in
the middle of a batch is set aside while the rest apply."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.contracts import Envelope, parse_event
from shared.contracts.cases import CaseAccepted, CaseMerged
from shared.messagebus import Message, MessageBus, runs_per_case
from shared.runtime import Service
from shared.settings import Settings
from services.notify.bootstrap import build
from tests.notify_cases import Case
from tests.notify_running import Notify, notify  # noqa: F401 (the fixture)
from tests.integration.test_privacy_notify import Reported
from tests.support import TopicReader, eventually, handlers_statements, publish

pytestmark = pytest.mark.integration


def message(envelope: Envelope) -> Message[Any]:
    return Message(envelope, parse_event(envelope))


async def _handle(service: Service, bus: str, envelopes: list[Envelope]) -> int:
    """Hand the envelopes to one of notify's buses as one batch in one unit of work; the statements it took."""
    handler: MessageBus = service.app.state.buses[bus]
    statements: list[str] = []
    log = lambda record: statements.append(record.query)  # noqa: E731
    async with service.runtime.uow() as uow:
        uow.conn.add_query_logger(log)
        try:
            await asyncio.wait_for(handler.handle_batch([message(e) for e in envelopes], uow), 30)
            await asyncio.wait_for(uow.commit(), 30)
        finally:
            uow.conn.remove_query_logger(log)
    return handlers_statements(statements)


def _phone(i: int) -> str:
    return f"1390{i:07d}"


async def test_a_batch_of_contacts_reports_and_acceptances_costs_the_same_statements_whatever_its_size(
        notify: Notify):
    service, pool = notify.service, notify.service.runtime.pool
    warm = Reported(_phone(9999999))
    for bus, envelope in (("contacts", warm.contact()), ("cases", warm.reported()), ("cases", warm.accepted())):
        await _handle(service, bus, [envelope])  # the templates' version read once before counting
    one, forty = Reported(_phone(1)), [Reported(_phone(100 + i)) for i in range(40)]
    counts = {}
    for name, bus, make in (("contact", "contacts", lambda c: c.contact()), ("reported", "cases", lambda c: c.reported()),
                            ("accepted", "cases", lambda c: c.accepted())):
        counts[name] = (await _handle(service, bus, [make(one)]), await _handle(service, bus, [make(c) for c in forty]))
    for name, (single, batch) in counts.items():
        assert batch <= single <= 8, (name, counts)
    # Issue 17: a contact with no reply waiting for it reads no case facts; the texts in force and the webhooks are
    # one read (7 and 7 statements before).
    assert counts["contact"][0] <= 6 and counts["accepted"][0] <= 6, counts
    ids = [c.id for c in forty]
    rows = await pool.fetch("SELECT case_id, kind, state, to_phone FROM deliveries WHERE case_id = ANY($1::text[])", ids)
    assert sorted(r["case_id"] for r in rows) == sorted(ids)
    assert {r["kind"] for r in rows} == {"acknowledgement"} and {r["state"] for r in rows} <= {"pending", "sending",
                                                                                                "sent"}
    assert {r["case_id"]: r["to_phone"] for r in rows} == {c.id: c.phone for c in forty}
    states = await pool.fetch("SELECT state FROM case_status WHERE case_id = ANY($1::text[])", ids)
    assert [r["state"] for r in states] == ["accepted"] * 40
    await eventually(lambda: pool.fetchval(
        "SELECT count(*) = 41 FROM deliveries WHERE case_id = ANY($1::text[]) AND state = 'sent'",
        [*ids, one.id]), 30)


def test_runs_keep_each_cases_order_and_a_merge_keeps_its_place():
    a, b, c = Case(_phone(1)), Case(_phone(2)), Case(_phone(3))
    batch = [message(e) for e in (a.reported(), a.accepted(), b.reported(), b.accepted(), c.merged(a), a.signed(),
                                  b.signed(), b.closed())]
    runs = [[(m.envelope.type, m.case_id) for m in run] for run in runs_per_case(batch, barriers=frozenset({CaseMerged}))]
    assert runs == [
        [("case.reported", a.id), ("case.reported", b.id)], [("case.accepted", a.id), ("case.accepted", b.id)],
        [("case.merged", c.id)],
        [("case.signed", a.id), ("case.signed", b.id)], [("case.closed", b.id)],
    ]


async def test_a_burst_of_reports_and_acceptances_case_by_case_costs_the_same_statements_whatever_its_size(
        notify: Notify):
    """As intake publishes them: each case's case.reported then its case.accepted, case after case."""
    service, pool = notify.service, notify.service.runtime.pool
    warm = Case(_phone(9999998))
    await _handle(service, "cases", [warm.reported(), warm.accepted()])
    one = await _handle(service, "cases", [e for c in [Case(_phone(500))] for e in (c.reported(), c.accepted())])
    forty = [Case(_phone(600 + i)) for i in range(40)]
    many = await _handle(service, "cases", [e for c in forty for e in (c.reported(), c.accepted())])
    assert many <= one <= 20, (one, many)
    rows = await pool.fetch("SELECT case_id FROM deliveries WHERE case_id = ANY($1::text[]) AND kind = "
                            "'acknowledgement'", [c.id for c in forty])
    assert len(rows) == 40


async def test_a_batch_handed_twice_or_with_an_event_twice_has_its_effects_once(notify: Notify):
    service, pool = notify.service, notify.service.runtime.pool
    cases = [Case(_phone(200 + i)) for i in range(3)]
    batch = [e for c in cases for e in (c.reported(), c.accepted())]
    await _handle(service, "cases", [*batch, batch[1]])
    await _handle(service, "cases", batch)  # a replay: every id was applied
    ids = [c.id for c in cases]
    rows = await pool.fetch("SELECT case_id, kind FROM deliveries WHERE case_id = ANY($1::text[])", ids)
    assert sorted((r["case_id"], r["kind"]) for r in rows) == sorted((i, "acknowledgement") for i in ids)
    # A second acceptance of a case under a new id (a re-sent event) acknowledges it no more.
    await _handle(service, "cases", [cases[0].accepted()])
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE case_id = $1", cases[0].id) == 1
    contacts = await pool.fetchval("SELECT count(*) FROM contacts WHERE case_id = ANY($1::text[])", ids)
    assert contacts == 3


async def test_a_cases_events_keep_their_order_within_a_batch(notify: Notify):
    service, pool = notify.service, notify.service.runtime.pool
    a, b = Case(_phone(301)), Case(_phone(302))
    signed = a.signed()
    await _handle(service, "cases", [a.reported(), a.accepted(), b.reported(), a.dispatched(), signed, b.accepted(),
                                     a.closed(), b.dispatched(), a.reopened()])
    states = dict(await pool.fetch("SELECT case_id, state FROM case_status WHERE case_id = ANY($1::text[])",
                                   [a.id, b.id]))
    assert states == {a.id: "reopened", b.id: "dispatched"}
    kinds = [r["template"] for r in await pool.fetch(
        "SELECT template FROM deliveries WHERE case_id = $1 ORDER BY template", a.id)]
    assert kinds == sorted(["acknowledgement", "progress_signed", "resolution", "survey", "progress_reopened"])
    # Reopened after the closing: nothing is due for erasure while it is open again.
    assert await pool.fetchval("SELECT window_closes_at FROM erasure_due WHERE case_id = $1", a.id) is None
    assert await pool.fetchval("SELECT template FROM deliveries WHERE source_event_id = $1", signed.id) == \
        "progress_signed"


async def test_a_poison_in_the_middle_of_a_batch_is_set_aside_and_the_rest_apply(isolated: Settings):
    """The batch is on the topic before notify starts, so that its consumer reads it as one batch."""
    a, b = Case(_phone(401)), Case(_phone(402))
    poison = CaseAccepted(case_no=a.no, category="street-light", unit_grid="U001",
                          description="无案件标识").envelope(source="intake", case_id=None)
    service = build(isolated.model_copy(update={"sms_gateway_url": "http://127.0.0.1:9/sms"}), manage_runtime=False)
    topics = service.runtime.topics
    async with TopicReader(isolated.kafka_bootstrap, topics.rejected_for(topics.cases)) as rejected:
        for envelope in (a.reported(), a.accepted(), poison, b.reported(), b.accepted()):
            await publish(isolated.kafka_bootstrap, topics.cases, envelope, key=a.id)  # one partition
        await asyncio.wait_for(service.runtime.start(), 60)
        try:
            got = await rejected.wait_for(lambda m: m["data"]["original"].get("id") == poison.id, 60)
            pool = service.runtime.pool
            await eventually(lambda: pool.fetchval(
                "SELECT count(*) = 2 FROM deliveries WHERE case_id = ANY($1::text[]) AND kind = 'acknowledgement'",
                [a.id, b.id]), 30)
            states = dict(await pool.fetch("SELECT case_id, state FROM case_status"))
        finally:
            await asyncio.wait_for(service.runtime.stop(), 30)
    assert "without case_id" in got["data"]["reason"]
    assert states == {a.id: "accepted", b.id: "accepted"}

"""The shared plumbing on the real broker and database: outbox relay, idempotent consumer, rejected topic."""
from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from shared.contracts import Envelope, InvalidMessage, parse_event
from shared.contracts.cases import CaseRejected
from shared.runtime import ServiceRuntime
from tests.support import TopicReader, publish

pytestmark = pytest.mark.integration

NO_MIGRATIONS = Path(__file__).parent / "no_migrations"


def _event(case_id: str, reason: str = "测试") -> Envelope:
    return CaseRejected(case_no="20261127-0001", reason=reason).envelope(source="test", case_id=case_id)


async def test_outbox_rows_reach_kafka_in_order_and_only_after_commit(isolated):
    runtime = ServiceRuntime("plumbing", isolated, NO_MIGRATIONS)
    await runtime.start()
    try:
        async with TopicReader(isolated.kafka_bootstrap, runtime.topics.cases) as reader:
            async with runtime.uow() as uow:
                uow.emit(runtime.topics.cases, _event("case-rolled-back"))
                # no commit: rolled back, must never be sent
            async with runtime.uow() as uow:
                for n in range(5):
                    uow.emit(runtime.topics.cases, _event("case-a", reason=f"r{n}"))
                await uow.commit()
            await reader.wait_for(lambda m: m.get("data", {}).get("reason") == "r4")
            got = [m for _t, _k, m in reader.seen if m.get("case_id") == "case-a"]
            # One key, one partition: the order of the outbox is the order on the topic.
            assert [m["data"]["reason"] for m in got] == [f"r{n}" for n in range(5)]
            assert {m["_key"] for m in got} == {"case-a"}
            later = await reader.all_within(1.0, lambda m: m.get("case_id") == "case-rolled-back")
            assert later == []
        assert await runtime.pool.fetchval("SELECT count(*) FROM outbox") == 0
    finally:
        await runtime.stop()


async def test_consumer_applies_each_event_once_and_rejects_bad_input_then_goes_on(isolated):
    runtime = ServiceRuntime("plumbing", isolated, NO_MIGRATIONS)
    applied: list[str] = []

    async def handle(envelope: Envelope, uow) -> None:
        event = parse_event(envelope)
        if getattr(event, "reason", "") == "refuse":
            raise InvalidMessage("refused by the handler: reason is 'refuse'")
        if await uow.claim("plumbing:test", envelope.id):
            uow.after_commit(lambda: applied.append(envelope.id))

    runtime.consume([runtime.topics.cases], handle)
    await runtime.start()
    try:
        await runtime.wait_until_consuming()
        good = _event("case-b")
        bootstrap = isolated.kafka_bootstrap
        async with TopicReader(bootstrap, runtime.topics.rejected_for(runtime.topics.cases)) as rejected:
            await publish(bootstrap, runtime.topics.cases, b"{not json", key="case-b")
            await publish(bootstrap, runtime.topics.cases, {"id": "x", "type": "case.rejected"}, key="case-b")
            await publish(bootstrap, runtime.topics.cases, _event("case-b", reason="refuse"), key="case-b")
            await publish(bootstrap, runtime.topics.cases, good, key="case-b")
            await publish(bootstrap, runtime.topics.cases, good, key="case-b")  # redelivery of the same event
            not_json = await rejected.wait_for(lambda m: m["data"]["original"] == "{not json")
            assert not_json["type"] == "message.rejected" and "not JSON" in not_json["data"]["reason"]
            missing = await rejected.wait_for(lambda m: isinstance(m["data"]["original"], dict)
                                              and m["data"]["original"].get("id") == "x")
            assert "occurred_at" in missing["data"]["reason"] and missing["_key"] == "case-b"
            refused = await rejected.wait_for(lambda m: "refused by the handler" in m["data"]["reason"])
            assert refused["data"]["topic"] == runtime.topics.cases
        for _ in range(100):
            if applied:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)
        assert applied == [good.id]
    finally:
        await runtime.stop()
    # Offsets read back: the group committed past all five messages.
    admin = AIOKafkaAdminClient(bootstrap_servers=isolated.kafka_bootstrap)
    await admin.start()
    try:
        offsets = await asyncio.wait_for(admin.list_consumer_group_offsets(runtime.group_id()), 10)
    finally:
        await admin.close()
    assert sum(meta.offset for tp, meta in offsets.items() if tp.topic == runtime.topics.cases) == 5


async def test_migrations_apply_once(isolated):
    from shared.db import PLUMBING_SQL, migrate

    conn = await asyncpg.connect(isolated.database_url)
    try:
        schema = isolated.schema("plumbing")
        first = await migrate(conn, schema, [PLUMBING_SQL, NO_MIGRATIONS])
        second = await migrate(conn, schema, [PLUMBING_SQL, NO_MIGRATIONS])
        assert first == ["plumbing/000_plumbing.sql", "plumbing/001_credentials.sql", "plumbing/002_outbox_failed.sql",
                         "plumbing/003_street_config_learnt.sql", "plumbing/004_credentials_registry_order.sql",
                         "plumbing/005_credential_signing_keys.sql", "plumbing/006_credential_issuer.sql",
                         "plumbing/007_claims_pruning.sql"]
        assert second == []
    finally:
        await conn.close()


async def test_the_relay_creates_a_missing_task_topic_with_its_spec_before_sending(isolated):
    runtime = ServiceRuntime("plumbing", isolated, NO_MIGRATIONS)
    await runtime.start()
    try:
        topic = runtime.topics.tasks("newowner")
        async with runtime.uow() as uow:
            uow.emit(topic, _event("case-c", reason="for a new owner"))
            await uow.commit()
        # Read only once the relay has sent it: a reader's metadata request would auto-create the topic.
        for _ in range(100):
            if await runtime.pool.fetchval("SELECT count(*) FROM outbox") == 0:
                break
            await asyncio.sleep(0.1)
        async with TopicReader(isolated.kafka_bootstrap, topic) as reader:
            got = await reader.wait_for(lambda m: m.get("case_id") == "case-c")
            assert got["data"]["reason"] == "for a new owner"
        admin = AIOKafkaAdminClient(bootstrap_servers=isolated.kafka_bootstrap)
        await admin.start()
        try:
            described = await asyncio.wait_for(admin.describe_topics([topic]), 10)
        finally:
            await admin.close()
        # An owner's task topic has one partition (the broker's default would be three).
        assert len(described[0]["partitions"]) == 1
    finally:
        await runtime.stop()


async def test_two_instances_share_the_stream_across_a_rebalance_and_apply_each_event_once(isolated):
    applied: list[str] = []

    def instance() -> ServiceRuntime:
        runtime = ServiceRuntime("plumbing", isolated, NO_MIGRATIONS)

        async def handle(envelope: Envelope, uow) -> None:
            if await uow.claim("plumbing:test", envelope.id):
                uow.after_commit(lambda: applied.append(envelope.id))

        runtime.consume([runtime.topics.cases], handle)
        return runtime

    first, second = instance(), instance()
    events = [_event(f"case-{n}") for n in range(60)]
    await first.start()
    try:
        await first.wait_until_consuming()
        for envelope in events[:30]:
            await publish(isolated.kafka_bootstrap, first.topics.cases, envelope, key=envelope.case_id)
        await second.start()  # joins the group: partitions move while messages flow
        for envelope in events[30:]:
            await publish(isolated.kafka_bootstrap, first.topics.cases, envelope, key=envelope.case_id)
        for _ in range(300):
            if len(set(applied)) == len(events):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)
        assert sorted(applied) == sorted(e.id for e in events)
    finally:
        await second.stop()
        await first.stop()


async def test_a_failing_message_takes_only_its_own_effects_with_it(isolated):
    """One batch, one transaction: the message the handler refuses leaves no row and no event behind."""
    runtime = ServiceRuntime("plumbing", isolated, NO_MIGRATIONS)

    async def handle(envelope: Envelope, uow) -> None:
        await uow.claim("plumbing:test", envelope.id)
        uow.emit(runtime.topics.replies, _event(envelope.case_id, reason="echo"))
        if parse_event(envelope).reason == "refuse":
            raise InvalidMessage("refused after writing")

    runtime.consume([runtime.topics.cases], handle)
    await runtime.start()
    try:
        await runtime.wait_until_consuming()
        good, bad = _event("case-d"), _event("case-d", reason="refuse")
        async with TopicReader(isolated.kafka_bootstrap, runtime.topics.replies) as echoes:
            for envelope in (good, bad, _event("case-d")):
                await publish(isolated.kafka_bootstrap, runtime.topics.cases, envelope, key="case-d")
            seen = await echoes.all_within(3.0, lambda m: m.get("case_id") == "case-d")
        assert len(seen) == 2
        claimed = {r["event_id"] for r in await runtime.pool.fetch("SELECT event_id FROM processed_events")}
        assert good.id in claimed and bad.id not in claimed and len(claimed) == 2
    finally:
        await runtime.stop()


async def test_a_batch_whose_handler_fails_is_handled_again_carefully_and_keeps_only_the_good_effects(isolated):
    """The batch is first handled without savepoints; a failure rolls that attempt back whole, and the batch
    is handled again with a savepoint per message: the good messages' effects once, the bad one's none."""
    runtime = ServiceRuntime("plumbing", isolated, NO_MIGRATIONS)
    calls: list[str] = []

    async def handle(envelope: Envelope, uow) -> None:
        calls.append(envelope.id)
        if not await uow.claim("plumbing:test", envelope.id):
            return
        uow.emit(runtime.topics.replies, _event(envelope.case_id, reason="echo"))
        if parse_event(envelope).reason == "refuse":
            raise InvalidMessage("refused after writing")

    good, bad, after = _event("case-e"), _event("case-e", reason="refuse"), _event("case-e")
    for envelope in (good, bad, after):  # on the topic before the consumer starts: one batch
        await publish(isolated.kafka_bootstrap, runtime.topics.cases, envelope, key="case-e")
    runtime.consume([runtime.topics.cases], handle)
    async with TopicReader(isolated.kafka_bootstrap, runtime.topics.replies) as echoes:
        await asyncio.wait_for(runtime.start(), 60)
        try:
            seen = await echoes.all_within(5.0, lambda m: m.get("case_id") == "case-e")
            claimed = {r["event_id"] for r in await runtime.pool.fetch("SELECT event_id FROM processed_events")}
        finally:
            await asyncio.wait_for(runtime.stop(), 60)
    assert len(seen) == 2  # the good two echoed once each, though handled twice
    assert claimed == {good.id, after.id}
    assert calls[:2] == [good.id, bad.id]  # the first attempt, without savepoints, stopped at the bad one …
    assert calls[2:] == [good.id, bad.id, after.id]  # … and the batch was handled again, carefully


async def test_a_batch_s_claims_are_made_in_one_statement_and_answer_as_one_at_a_time_would(isolated):
    """expect_claims: the first claim claims the whole batch; each id is True once, a repeat in the batch or an id
    applied before is False, an id outside the batch is claimed alone; a rollback leaves nothing claimed."""
    from shared.db import PLUMBING_SQL, create_pool, migrate
    from shared.uow import UnitOfWork

    schema = isolated.schema("plumbing")
    pool = await create_pool(isolated.database_url, schema)
    try:
        async with pool.acquire() as conn:
            await migrate(conn, schema, [PLUMBING_SQL])
            await conn.execute("INSERT INTO processed_events(consumer, event_id) VALUES ('c', 'old')")
        async with UnitOfWork(pool) as uow:
            uow.expect_claims(["b", "old", "a", "b"])
            before = await uow.conn.fetchval("SELECT count(*) FROM processed_events")
            assert await uow.claim("c", "a") is True
            after_first = await uow.conn.fetchval("SELECT count(*) FROM processed_events")
            assert after_first - before == 2  # a and b, in the one statement of the first claim
            assert [await uow.claim("c", e) for e in ("b", "old", "b", "a")] == [True, False, False, False]
            assert await uow.claim("c", "elsewhere") is True and await uow.claim("c", "elsewhere") is False
            assert await uow.claim("d", "b") is True  # another consumer name: its own claims
            await uow.commit()
        assert {(r["consumer"], r["event_id"]) for r in await pool.fetch("SELECT consumer, event_id FROM processed_events")} \
            == {("c", "old"), ("c", "a"), ("c", "b"), ("c", "elsewhere"), ("d", "a"), ("d", "b"), ("d", "old")}
        async with UnitOfWork(pool) as uow:
            uow.expect_claims(["new"])
            assert await uow.claim("c", "new") is True
        assert not await pool.fetchval("SELECT count(*) FROM processed_events WHERE event_id = 'new'")
    finally:
        await pool.close()


async def test_a_connection_an_outage_cut_short_is_never_handed_out_again(isolated):
    """A unit of work ended by an outage's error (here the client's own 'another operation is in progress', which a
    statement cut by the server's death leaves behind) closes its connection instead of returning it: the next unit
    of work runs on a new one, and the error counts as an outage to wait out, not as bad data to set aside."""
    from shared.errors import is_transient

    runtime = ServiceRuntime("plumbing", isolated, NO_MIGRATIONS)
    await runtime.start()
    try:
        cut = asyncpg.exceptions.InternalClientError("cannot switch to state 12; another operation (2) is in progress")
        assert is_transient(cut)
        with pytest.raises(asyncpg.exceptions.InternalClientError):
            async with runtime.uow() as uow:
                raw = uow.conn._con  # the connection itself, beyond the pool's proxy
                raise cut
        assert raw.is_closed()
        # A unit of work that ends on a handler's own error keeps its connection (rolled back, back in the pool).
        with pytest.raises(ValueError):
            async with runtime.uow() as uow:
                kept = uow.conn._con
                raise ValueError("a handler's own error")
        assert not kept.is_closed()
        async with runtime.uow() as uow:
            assert await uow.conn.fetchval("SELECT 1") == 1
    finally:
        await runtime.stop()

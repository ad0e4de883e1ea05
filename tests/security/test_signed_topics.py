"""A signature binds a record to its topic and key (issue 18, item 2), attacked on the real broker.

A signature over the value alone let a genuine signed record be copied anywhere and still verify: a task.assigned
routing made for one owner onto another owner's task topic, a genuine 结案 from another street's (another prefix's)
wangge.cases onto this one, an event re-keyed into another partition's order. Each is refused now — by the
services' consumers to `<topic>.rejected`, and by an owner's system checking with the public keys."""
from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared import kafka_security
from shared.clock import now
from shared.contracts import Envelope
from shared.contracts.cases import CaseSigned
from shared.contracts.tasks import TaskAssigned
from shared.kafka import OutgoingMessage, Producer
from shared.signing import SIGNATURE_HEADER, SIGNER_HEADER, signer_for, verifier_for
from shared.topics import Topics, ensure_topics
from tests.conftest import drop_schemas
from tests.supervision_cases import open_case
from tests.supervision_cases import start
from tests.support import TopicReader, publish, signature_of

pytestmark = pytest.mark.integration


def signing(case_id: str, case_no: str, owner: str) -> bytes:
    """签收 (supervision's case.signed): the case moves from dispatched to in_progress when it is taken."""
    return CaseSigned(case_no=case_no, owner=owner, update_id=str(uuid.uuid4())).envelope(
        source="supervision", case_id=case_id).to_json()


async def test_a_genuine_signed_event_replayed_onto_another_topic_or_key_is_refused(make_settings):
    settings = make_settings()
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings.kafka_bootstrap, topics.fixed())
    service = await start(settings)
    pool = service.runtime.pool
    try:
        case_id, case_no = await open_case(settings, pool)
        owner = await pool.fetchval("SELECT owner FROM cases WHERE case_id = $1", case_id)
        # Genuine signatures of supervision's key (the one this street's services trust), but made for another
        # street's wangge.cases (another prefix on the same broker), for another case's key, and in the first
        # format (over the value alone): each copied here as it was.
        elsewhere, rekeyed, old_format = (signing(case_id, case_no, owner) for _ in range(3))
        await publish(settings.kafka_bootstrap, topics.cases, elsewhere, key=case_id,
                      headers=signature_of(elsewhere, "supervision", topic="another-street.wangge.cases", key=case_id))
        await publish(settings.kafka_bootstrap, topics.cases, rekeyed, key=case_id,
                      headers=signature_of(rekeyed, "supervision", topic=topics.cases, key="another-case"))
        value_only = [(SIGNER_HEADER, b"supervision"), (SIGNATURE_HEADER, base64.b64encode(
            signer_for(settings, "supervision")._key.sign(old_format)))]
        await publish(settings.kafka_bootstrap, topics.cases, old_format, key=case_id, headers=value_only)
        by_id = {Envelope.from_json(v).id: name for name, v in
                 (("elsewhere", elsewhere), ("rekeyed", rekeyed), ("old", old_format))}
        async with TopicReader(settings.kafka_bootstrap, topics.rejected_for(topics.cases)) as rejected:
            reasons = {}
            for _ in range(3):
                got = await rejected.wait_for(
                    lambda m: m.get("data", {}).get("original", {}).get("id") in set(by_id) - set(reasons), 30)
                reasons[got["data"]["original"]["id"]] = got["data"]["reason"]
        named = {by_id[i]: r for i, r in reasons.items()}
        assert "copied from another topic or key" in named["elsewhere"]
        assert "copied from another topic or key" in named["rekeyed"]
        assert "over the value alone" in named["old"]
        assert all(r.startswith("case.signed refused") for r in named.values())
        # None was handled: the case is still waiting to be taken.
        assert await pool.fetchval("SELECT state FROM cases WHERE case_id = $1", case_id) == "dispatched"
        # The same 签收 signed for this topic and key is taken: the refusals were the copies', not the event's.
        await publish(settings.kafka_bootstrap, topics.cases, signing(case_id, case_no, owner), key=case_id,
                      signed_as="supervision")

        async def taken() -> None:
            while await pool.fetchval("SELECT state FROM cases WHERE case_id = $1", case_id) != "in_progress":
                await asyncio.sleep(0.2)
        await asyncio.wait_for(taken(), 30)
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)
        await drop_schemas(settings)


async def _records(bootstrap: str, topic: str, want: int) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await asyncio.wait_for(consumer.start(), 20)
    try:
        got: list = []

        async def take() -> None:
            while len(got) < want:
                batch = await consumer.getmany(timeout_ms=500)
                got.extend(r for rs in batch.values() for r in rs)
        await asyncio.wait_for(take(), 20)
        return got
    finally:
        await asyncio.wait_for(consumer.stop(), 20)


async def test_a_task_assigned_copied_to_another_owners_topic_does_not_verify_there(make_settings):
    settings = make_settings()
    topics = Topics(settings.topic_prefix)
    mine, theirs = topics.tasks("huanwei"), topics.tasks("chengguan")
    await ensure_topics(settings.kafka_bootstrap, [topics.for_owner("huanwei"), topics.for_owner("chengguan")])
    case_id = f"task-{uuid.uuid4().hex[:8]}"
    assigned = TaskAssigned(case_no="20261206-0042", owner="huanwei", category="CM04", description="垃圾箱破损",
                            unit_grid="3704020010010201", due_at=now() + timedelta(hours=4), priority="normal",
                            address="文化路1号").envelope(source="routing", case_id=case_id)
    # Published as routing publishes it (its producer, its key), on 环卫所's task topic.
    kafka_security.use(settings)
    producer = Producer(settings.kafka_bootstrap, "signed-topics-test", signer=signer_for(settings, "routing"))
    await asyncio.wait_for(producer.start(), 30)
    try:
        await asyncio.wait_for(producer.send_all(
            [OutgoingMessage(mine, case_id, assigned.to_json(), assigned.type)]), 30)
    finally:
        await asyncio.wait_for(producer.stop(), 30)
    [original] = await _records(settings.kafka_bootstrap, mine, 1)
    # An attacker who reads 环卫所's topic copies the record, headers and all, onto 城管's.
    copier = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await asyncio.wait_for(copier.start(), 20)
    try:
        await asyncio.wait_for(copier.send_and_wait(theirs, original.value, key=original.key,
                                                    headers=list(original.headers)), 20)
    finally:
        await asyncio.wait_for(copier.stop(), 20)
    [copy] = await _records(settings.kafka_bootstrap, theirs, 1)
    assert (copy.value, list(copy.headers)) == (original.value, list(original.headers))
    # 城管's system checks what it reads with routing's public key (shared.signing, the documented check).
    verifier = verifier_for(settings)
    envelope = Envelope.from_json(original.value)
    assert verifier.check(original, envelope) is None
    refusal = verifier.check(copy, envelope)
    assert refusal is not None and "copied from another topic or key" in refusal

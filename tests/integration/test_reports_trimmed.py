"""Residents' phones off Kafka as soon as their one reader has them (issue 18, item 3), on the real broker: a report
intake has taken is cut from wangge.reports (the partition's log start moves past it, and a reader from the beginning
no longer finds the phone), a report intake has not committed stays; the same for wangge.contacts and notify."""
from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any, AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import RecordMetadata
from prometheus_client import REGISTRY

from services.intake.bootstrap import build as build_intake
from shared.contracts import Envelope
from shared.contracts.contacts import ContactRecorded
from shared.trim import Trimmer
from tests.integration.test_intake_service import report_body
from tests.notify_running import Notify, notify  # noqa: F401 (the fixture)
from tests.support import eventually, running, signature_of

pytestmark = pytest.mark.integration

# The tests' trim pass: every half second (services: WANGGE_TRIM_INTERVAL_SECONDS, 10 s by default).
TRIM_SECONDS = 0.5


@pytest.fixture
def isolated(isolated):
    """The tests' own settings: a trim pass every half second."""
    return isolated.model_copy(update={"trim_interval_seconds": TRIM_SECONDS})


def a_phone() -> str:
    """A mobile number no other test uses (so finding it on a topic means finding this test's record)."""
    return "139" + "".join(random.choice("0123456789") for _ in range(8))


async def produce(bootstrap: str, topic: str, envelope: Envelope, key: str) -> RecordMetadata:
    """Publish one envelope (signed as the owner of its type, as tests.support.publish does); where it landed."""
    payload = envelope.to_json()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await asyncio.wait_for(producer.start(), 20)
    try:
        return await asyncio.wait_for(producer.send_and_wait(
            topic, payload, key=key.encode(), headers=signature_of(payload, topic=topic, key=key)), 20)
    finally:
        await producer.stop()


async def log_start(bootstrap: str, tp: TopicPartition) -> int:
    """The partition's low watermark: the first offset any reader can still fetch."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await asyncio.wait_for(consumer.start(), 20)
    try:
        return (await asyncio.wait_for(consumer.beginning_offsets([tp]), 10))[tp]
    finally:
        await asyncio.wait_for(consumer.stop(), 10)


async def from_the_beginning(bootstrap: str, topic: str, seconds: float = 2.0) -> bytes:
    """Every record value a new reader fetches from the beginning of `topic` within `seconds`, joined."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"test-reader-{uuid.uuid4().hex[:8]}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await asyncio.wait_for(consumer.start(), 20)
    seen: list[bytes] = []
    try:
        deadline = asyncio.get_running_loop().time() + seconds
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            batch = await consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000))
            seen += [record.value or b"" for records in batch.values() for record in records]
    finally:
        await asyncio.wait_for(consumer.stop(), 15)
    return b"\n".join(seen)


@pytest.fixture
async def intake(isolated) -> AsyncIterator[Any]:
    async with running(build_intake(isolated, manage_runtime=False)) as service:
        yield service


def kafka_report(phone: str) -> tuple[Envelope, str]:
    external_id = f"12345-{uuid.uuid4().hex[:10]}"
    body = report_body(external_id, source="hotline", reporter={"name": "王女士", "phone": phone})
    return Envelope.new("report.submitted", 1, body, source="hotline"), external_id


async def taken(pool, external_id: str) -> bool:
    return bool(await pool.fetchval("SELECT EXISTS (SELECT 1 FROM reports WHERE external_id = $1)", external_id))


async def test_a_report_intake_has_taken_is_cut_from_wangge_reports(intake, isolated):
    topic, bootstrap = intake.runtime.topics.reports, isolated.kafka_bootstrap
    phone = a_phone()
    report, external_id = kafka_report(phone)
    sent = await produce(bootstrap, topic, report, key=external_id)
    tp = TopicPartition(topic, sent.partition)
    await eventually(lambda: taken(intake.runtime.pool, external_id))
    # Committed by intake, then cut by its next trim pass: the log starts after the report.
    start = await eventually(lambda: _past(bootstrap, tp, sent.offset), timeout=15)
    assert start > sent.offset
    assert phone.encode() not in await from_the_beginning(bootstrap, topic)
    # Counted for the operators (docs/METRICS.md; the alert WanggeTrimFailing watches its failures).
    assert REGISTRY.get_sample_value("wangge_topic_trims_total",
                                     {"service": "intake", "topic": topic, "outcome": "cut"}) >= 1


async def _past(bootstrap: str, tp: TopicPartition, offset: int) -> int | None:
    start = await log_start(bootstrap, tp)
    return start if start > offset else None


async def test_a_report_intake_has_not_committed_stays_until_it_has(isolated):
    topic, bootstrap = f"{isolated.topic_prefix}wangge.reports", isolated.kafka_bootstrap
    async with running(build_intake(isolated, manage_runtime=False)) as first:
        report, first_key = kafka_report(a_phone())
        sent = await produce(bootstrap, topic, report, key=first_key)
        await eventually(lambda: taken(first.runtime.pool, first_key))
        await eventually(lambda: _past(bootstrap, TopicPartition(topic, sent.partition), sent.offset), timeout=15)

    # intake is away: a report arrives on the same partition, and a trim pass (as intake's) leaves it there.
    phone = a_phone()
    waiting, external_id = kafka_report(phone)
    landed = await produce(bootstrap, topic, waiting, key=first_key)  # the first one's partition
    assert landed.partition == sent.partition
    trimmer = Trimmer(service="intake", bootstrap=bootstrap, topic=topic, groups=[first.runtime.group_id()],
                      interval=TRIM_SECONDS)
    try:
        await asyncio.wait_for(trimmer.trim_once(), 30)
    finally:
        await trimmer.close()
    tp = TopicPartition(topic, landed.partition)
    assert await log_start(bootstrap, tp) <= landed.offset
    assert phone.encode() in await from_the_beginning(bootstrap, topic)

    # intake back: it takes the report, and then the report goes too.
    second = build_intake(isolated, manage_runtime=False)
    await asyncio.wait_for(second.runtime.start(), 60)
    try:
        await eventually(lambda: taken(second.runtime.pool, external_id))
        await eventually(lambda: _past(bootstrap, tp, landed.offset), timeout=15)
    finally:
        await asyncio.wait_for(second.runtime.stop(), 30)
    assert phone.encode() not in await from_the_beginning(bootstrap, topic)


def contact(phone: str) -> Envelope:
    case_id = str(uuid.uuid4())
    return ContactRecorded(case_no=f"20261127-{uuid.uuid4().int % 100000:05d}", name="张先生", phone=phone).envelope(
        source="intake", case_id=case_id)


async def test_a_contact_notify_has_taken_is_cut_from_wangge_contacts(notify: Notify):
    runtime, bootstrap = notify.service.runtime, notify.settings.kafka_bootstrap
    topic = runtime.topics.contacts
    phone = a_phone()
    recorded = contact(phone)
    sent = await produce(bootstrap, topic, recorded, key=recorded.case_id)
    await eventually(lambda: runtime.pool.fetchval("SELECT EXISTS (SELECT 1 FROM contacts WHERE phone = $1)", phone))
    start = await eventually(lambda: _past(bootstrap, TopicPartition(topic, sent.partition), sent.offset), timeout=15)
    assert start > sent.offset
    assert phone.encode() not in await from_the_beginning(bootstrap, topic)


async def test_a_contact_notify_has_not_committed_stays(notify: Notify):
    runtime, bootstrap = notify.service.runtime, notify.settings.kafka_bootstrap
    topic, group = runtime.topics.contacts, runtime.group_id("-contacts")
    first = contact(a_phone())
    sent = await produce(bootstrap, topic, first, key=first.case_id)
    await eventually(lambda: _past(bootstrap, TopicPartition(topic, sent.partition), sent.offset), timeout=15)
    await asyncio.wait_for(runtime.stop(), 30)  # notify away (the fixture's stop after this is harmless)

    phone = a_phone()
    waiting = contact(phone)
    landed = await produce(bootstrap, topic, waiting, key=first.case_id)  # the same partition as the first
    assert landed.partition == sent.partition
    trimmer = Trimmer(service="notify", bootstrap=bootstrap, topic=topic, groups=[group], interval=TRIM_SECONDS)
    try:
        await asyncio.wait_for(trimmer.trim_once(), 30)
    finally:
        await trimmer.close()
    assert await log_start(bootstrap, TopicPartition(topic, landed.partition)) <= landed.offset
    assert phone.encode() in await from_the_beginning(bootstrap, topic)

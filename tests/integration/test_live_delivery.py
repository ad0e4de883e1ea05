"""The live process commits no offset of wangge.cases ahead of the changelog rows its events wrote
(services/supervision/live/delivery.py): else a member killed right after a commit took those rows with it, and the
next owner of the partition, resuming after the committed offset, never wrote them again (the several-instances
test's figures a few cases short, one run in four).

Each `case.reported` of a new case writes exactly one row of the `cases` table, to the changelog partition of its own
partition of wangge.cases: so at every moment, for every partition, the changelog's end offset is at least the live
group's committed offset. Sampled while a stream of events is followed (several commits under way); the changelog's
end is read after the committed offset, so a sample can only favour the commit, never hide a commit ahead. That
window is short (a commit ahead lasts until the rows' send completes, milliseconds here): this check passed even with
faust's own flush; the second test, which asks faust's flush itself, failed with it every time it was tried (1 row of
254, 1 of 2,447: the one its sender had taken out of the queue), and passes with the live process's.
"""
from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.clock import now
from shared.contracts.cases import CaseReported
from shared.topics import Topics
from services.supervision.live.bootstrap import build
from tests.live_running import MASKED_PHONE, running_live
from tests.support import signature_of

pytestmark = pytest.mark.integration

EVENTS = 3000  # at once: the agent follows them as fast as it can, its changelog writes pile up in faust's buffer,
# and several of faust's commits (every 2.8 s) fall in the middle of them


async def reports(producer: AIOKafkaProducer, topic: str, count: int = EVENTS) -> None:
    """`count` (EVENTS) case.reported of as many new cases, signed as intake signs them, sent at once."""
    for i in range(count):
        case_id = str(uuid.uuid4())
        payload = CaseReported(
            case_no=f"20261206-{i:05d}", source="terminal", external_id=f"SZT-D{i:05d}", category="HW01",
            description="箱体破损", reporter={"name": "李**", "phone": MASKED_PHONE}, observed_at=now(),
        ).envelope(source="intake", case_id=case_id).to_json()
        await producer.send(topic, payload, key=case_id.encode(),
                            headers=signature_of(payload, topic=topic, key=case_id))
    await producer.flush()


async def test_no_offset_of_wangge_cases_is_committed_ahead_of_its_changelog_rows(isolated):
    settings = isolated
    topic = Topics(settings.topic_prefix).cases
    group = f"{settings.topic_prefix}wangge-supervision-live"
    changelog = f"{group}-cases-changelog"
    async with running_live(settings, grant_tokens=False):
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, linger_ms=5)
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        reader = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
        await asyncio.wait_for(asyncio.gather(producer.start(), admin.start(), reader.start()), 30)
        try:
            partitions = sorted(await asyncio.wait_for(producer.partitions_for(topic), 20))
            changelog_tps = [TopicPartition(changelog, p) for p in partitions]

            async def stream() -> None:
                await reports(producer, topic)

            async def committed() -> dict[int, int]:
                offsets = await admin.list_consumer_group_offsets(group)
                return {tp.partition: meta.offset for tp, meta in offsets.items()
                        if tp.topic == topic and meta.offset >= 0}

            samples: list[tuple[dict[int, int], dict[int, int]]] = []

            async def watch() -> None:
                while True:
                    done = await committed()
                    ends = {tp.partition: end for tp, end in (await reader.end_offsets(changelog_tps)).items()}
                    samples.append((done, ends))
                    ahead = {p: (offset, ends.get(p, 0)) for p, offset in done.items() if offset > ends.get(p, 0)}
                    assert not ahead, f"committed ahead of their changelog rows (partition: offset, rows) {ahead}"
                    if sum(done.values()) == EVENTS:
                        return
                    await asyncio.sleep(0.02)

            watching = asyncio.create_task(watch())
            await asyncio.wait_for(stream(), 120)
            await asyncio.wait_for(watching, 120)
        finally:
            await asyncio.wait_for(asyncio.gather(producer.stop(), admin.close(), reader.stop(),
                                                  return_exceptions=True), 30)
    # The commits were watched as they came: several distinct committed positions, not just the last one.
    assert len({tuple(sorted(done.items())) for done, _ in samples}) >= 3


async def test_after_faust_flushes_its_producer_every_row_written_before_is_in_kafka(isolated):
    """What faust counts on before each commit and each revocation, asked directly and many times in the middle of a
    burst: once `app.producer.flush()` returns, every changelog row written before the call is in Kafka (faust's own
    flush left up to 99 of them behind in the several-instances test)."""
    settings = isolated
    topic = Topics(settings.topic_prefix).cases
    changelog = f"{settings.topic_prefix}wangge-supervision-live-cases-changelog"
    service = build(settings, manage_runtime=False)
    runtime = service.runtime
    streams = runtime.streams  # type: ignore[attr-defined]
    await asyncio.wait_for(runtime.start(), 60)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, linger_ms=5)
    reader = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    try:
        await asyncio.wait_for(runtime.wait_until_consuming(60), 70)  # type: ignore[attr-defined]
        await asyncio.wait_for(asyncio.gather(producer.start(), reader.start()), 30)
        partitions = await asyncio.wait_for(producer.partitions_for(topic), 20)
        changelog_tps = [TopicPartition(changelog, p) for p in partitions]
        await asyncio.wait_for(reports(producer, topic), 120)

        async def check_while_following() -> int:
            checks = 0
            while streams.events_seen < EVENTS:
                written = streams.events_seen  # each followed event wrote its one row before the count went on
                if written:
                    await asyncio.wait_for(streams.app.producer.flush(), 30)
                    rows = sum((await reader.end_offsets(changelog_tps)).values())
                    assert rows >= written, f"flushed, yet {written - rows} of {written} rows not in Kafka"
                    checks += 1
                await asyncio.sleep(0.01)
            return checks

        assert await asyncio.wait_for(check_while_following(), 120) >= 3
    finally:
        await asyncio.wait_for(asyncio.gather(producer.stop(), reader.stop(), return_exceptions=True), 30)
        await asyncio.wait_for(runtime.stop(), 60)

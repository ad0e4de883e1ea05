"""The floor's and the end-to-end benchmark's counting on the real broker (bench/floor.py, bench/support.py): faust's
own path is measured (not near zero) and leaves nothing behind, and the records the live figures' agent reads and its
tables write are told apart from the rest."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata

from bench.floor import LEAST_UNITS, stream_costs
from bench.support import kafka_traffic
from services.supervision.live import APP_NAME

pytestmark = pytest.mark.integration


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await asyncio.wait_for(admin.start(), 20)
    try:
        return set(await asyncio.wait_for(admin.list_topics(), 20))
    finally:
        await admin.close()


async def test_faust_s_path_is_measured_above_its_least_and_its_topics_are_deleted(base_settings):
    bootstrap = base_settings.kafka_bootstrap
    before = {name for name in await _topics(bootstrap) if name.startswith("bench-floor-stream-")}
    # No plain read or produce subtracted: what is left is all faust's, and must be at least its least.
    stream_event, table_row = await asyncio.wait_for(stream_costs(bootstrap, 600, 0.0, 0.0), 180)
    assert stream_event >= LEAST_UNITS.stream_event
    assert table_row >= LEAST_UNITS.table_row
    after = {name for name in await _topics(bootstrap) if name.startswith("bench-floor-stream-")}
    assert after <= before  # the measured topic, the table's changelog and faust's leader topic gone


async def test_the_live_figures_reads_and_table_rows_are_counted_apart_from_the_rest(base_settings):
    bootstrap = base_settings.kafka_bootstrap
    tag = uuid.uuid4().hex[:8]
    changelog, source = f"x{tag}{APP_NAME}-cases-changelog", f"x{tag}.source"
    before = await asyncio.wait_for(kafka_traffic(bootstrap), 60)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await asyncio.wait_for(producer.start(), 20)
    try:
        for i in range(5):
            await asyncio.wait_for(producer.send_and_wait(changelog, b"row", key=str(i).encode()), 30)
        for i in range(18):
            await asyncio.wait_for(producer.send_and_wait(source, b"event", partition=0), 30)
    finally:
        await producer.stop()
    # The live figures' group has read 7 records of the source, another group 11.
    for group, read in ((f"x{tag}{APP_NAME}", 7), (f"x{tag}wangge-routing", 11)):
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await asyncio.wait_for(consumer.start(), 20)
        try:
            tp = TopicPartition(source, 0)
            consumer.assign([tp])
            await asyncio.wait_for(consumer.commit({tp: OffsetAndMetadata(read, "")}), 30)
        finally:
            await consumer.stop()
    try:
        after = await asyncio.wait_for(kafka_traffic(bootstrap), 60)
        assert after.table_rows - before.table_rows >= 5
        assert after.written - before.written >= 5 + 18
        assert after.streamed - before.streamed >= 7
        # The other group's 11 count as read, not as the live figures'.
        assert (after.read - before.read) - (after.streamed - before.streamed) >= 11
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await asyncio.wait_for(admin.start(), 20)
        try:
            await asyncio.wait_for(admin.delete_topics([changelog, source]), 30)
        finally:
            await admin.close()

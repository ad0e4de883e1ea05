"""The lag a health check or a drill reads is the broker's: a group that never committed is behind by every
message of the topic, and by what is past its commits once it commits."""
from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from shared.lag import end_offsets, group_lags, topic_lag
from shared.topics import TopicSpec, ensure_topics
from tests.support import publish

pytestmark = pytest.mark.integration


async def test_a_group_is_behind_by_what_it_did_not_commit(isolated):
    topic, group = f"{isolated.topic_prefix}lag-probe", f"{isolated.topic_prefix}lag-group"
    await asyncio.wait_for(ensure_topics(isolated.kafka_bootstrap, [TopicSpec(topic, partitions=3)]), 30)
    for n in range(5):
        await publish(isolated.kafka_bootstrap, topic, {"n": n}, key=f"k{n}")
    assert await topic_lag(isolated.kafka_bootstrap, group, topic) == 5  # never committed: behind by all

    member = AIOKafkaConsumer(topic, bootstrap_servers=isolated.kafka_bootstrap, group_id=group,
                              enable_auto_commit=False, auto_offset_reset="earliest")
    await asyncio.wait_for(member.start(), 30)
    try:
        batch = {}
        while sum(len(records) for records in batch.values()) < 5:
            for tp, records in (await asyncio.wait_for(member.getmany(timeout_ms=500), 10)).items():
                batch.setdefault(tp, []).extend(records)
        first_tp, records = next(iter(batch.items()))
        await asyncio.wait_for(member.commit({first_tp: OffsetAndMetadata(records[-1].offset + 1, "")}), 10)
    finally:
        await asyncio.wait_for(member.stop(), 30)
    behind = 5 - len(records)
    assert await topic_lag(isolated.kafka_bootstrap, group, topic) == behind
    assert isinstance(first_tp, TopicPartition)
    # group_lags counts only committed partitions (it measures groups that run), and names the group.
    assert (await group_lags(isolated.kafka_bootstrap, lambda g: g == group)) == {group: 0}


async def test_the_ends_of_many_topics_a_probe_does_not_read_are_known_at_once(isolated):
    """A probe asks about partitions of topics it holds none of. aiokafka would learn their leaders one topic at a
    time (a metadata request and a 100 ms back-off each): a broker's few hundred topics took longer than any
    timeout. shared.lag.end_offsets assigns them first, so one metadata request answers for all."""
    topics = [f"{isolated.topic_prefix}lag-many-{n}" for n in range(120)]
    await asyncio.wait_for(ensure_topics(isolated.kafka_bootstrap, [TopicSpec(t, partitions=1) for t in topics]), 120)
    for n, topic in enumerate(topics[:3]):
        for i in range(n + 1):
            await publish(isolated.kafka_bootstrap, topic, {"i": i}, key=f"k{i}")
    probe = AIOKafkaConsumer(bootstrap_servers=isolated.kafka_bootstrap, enable_auto_commit=False)
    await asyncio.wait_for(probe.start(), 30)
    try:
        started = time.monotonic()
        ends = await asyncio.wait_for(end_offsets(probe, [TopicPartition(t, 0) for t in topics]), 30)
        took = time.monotonic() - started
    finally:
        await asyncio.wait_for(probe.stop(), 30)
    assert [ends[TopicPartition(t, 0)] for t in topics[:4]] == [1, 2, 3, 0]
    assert sum(ends.values()) == 6
    assert took < 6, f"{len(topics)} topics' ends took {took:.1f} s: learnt one topic at a time"

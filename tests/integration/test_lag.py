"""The lag a health check or a drill reads is the broker's: a group that never committed is behind by every
message of the topic, and by what is past its commits once it commits."""
from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from shared.lag import group_lags, topic_lag
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

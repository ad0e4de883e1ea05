"""How far consumer groups are behind, measured from outside: committed offsets against the partitions' ends.

What Kafka's own consumer-group tool shows. Used where the consumer is not ours to ask (faust's, in the live
process) and by the fault tests and drills, which must see every group of a run catch up.
"""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared import kafka_security


async def group_lags(bootstrap: str, wanted: Callable[[str], bool], *, timeout: float = 10.0) -> dict[str, int]:
    """Each consumer group whose name `wanted` accepts: its total lag (messages past its committed offsets).

    Every request is bounded by `timeout`, the clients' closing included (one closing against a broker that does
    not answer waits for ever), so a caller asking during an outage gets an error, not a hang.
    """
    async with _clients(bootstrap, timeout) as (admin, probe):
        lags: dict[str, int] = {}
        for group, *_ in await asyncio.wait_for(admin.list_consumer_groups(), timeout):
            if wanted(group):
                committed = await asyncio.wait_for(admin.list_consumer_group_offsets(group), timeout)
                lags[group] = await _behind(probe, committed, timeout)
        return lags


async def topic_lag(bootstrap: str, group: str, topic: str, *, timeout: float = 10.0) -> int:
    """One group's lag on one topic, its partitions without a commit yet counted from their beginning (a group
    that never committed — stuck on its first message — is behind by all of it, not by nothing)."""
    async with _clients(bootstrap, timeout) as (admin, probe):
        # Every topic described (naming one in a metadata request would create it where auto-creation is on).
        described = await asyncio.wait_for(admin.describe_topics(), timeout)
        numbers = next((sorted(p["partition"] for p in t["partitions"]) for t in described if t["topic"] == topic), [])
        partitions = [TopicPartition(topic, p) for p in numbers]
        committed = await asyncio.wait_for(admin.list_consumer_group_offsets(group, partitions=partitions), timeout)
        starts = await asyncio.wait_for(beginning_offsets(probe, partitions), timeout) if partitions else {}
        positions = {tp: committed[tp].offset if tp in committed and committed[tp].offset >= 0 else starts[tp]
                     for tp in partitions}
        return await _behind(probe, positions, timeout)


@asynccontextmanager
async def _clients(bootstrap: str, timeout: float) -> AsyncIterator[tuple[AIOKafkaAdminClient, AIOKafkaConsumer]]:
    security = kafka_security.options(bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000), **security)
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             request_timeout_ms=int(timeout * 1000), **security)
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(probe.start(), timeout)
        yield admin, probe
    finally:
        for closing in (probe.stop(), admin.close()):
            try:
                await asyncio.wait_for(asyncio.shield(closing), timeout)
            except Exception:  # noqa: BLE001 — a measuring client left behind is not the measurement's verdict
                pass


async def _behind(probe: AIOKafkaConsumer, positions: Mapping[TopicPartition, Any], timeout: float) -> int:
    """Messages between these positions (offsets, or committed OffsetAndMetadata) and their partitions' ends."""
    offsets = {tp: getattr(at, "offset", at) for tp, at in positions.items() if isinstance(tp, TopicPartition)}
    ends = await asyncio.wait_for(end_offsets(probe, list(offsets)), timeout) if offsets else {}
    return sum(max(0, ends[tp] - offset) for tp, offset in offsets.items())


async def end_offsets(probe: AIOKafkaConsumer, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    """The partitions' ends, asked by a consumer that reads none of them (a probe of its own: it is assigned them).

    Assigned first: aiokafka learns the leaders of partitions whose topics it does not hold one topic at a time, a
    metadata request and a back-off for each: on a broker with a few hundred topics, more than any timeout allows."""
    probe.assign(partitions)
    return await probe.end_offsets(partitions)


async def beginning_offsets(probe: AIOKafkaConsumer, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    """The partitions' first offsets, asked the same way (assigned first: see end_offsets)."""
    probe.assign(partitions)
    return await probe.beginning_offsets(partitions)

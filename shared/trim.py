"""Residents' phones off Kafka as soon as their one reader has them: records a topic's readers have all committed are
deleted from its log (Kafka's DeleteRecords), so that nobody reading the topic later finds them.

A topic that carries personal data and has one reader (wangge.reports: intake; wangge.contacts: notify) keeps a
record only until that reader's consumer group has committed past it. The group commits an offset only after the
PostgreSQL transaction of what it covers (shared/consumer.py), so a record below every reading group's committed
offset is held in the reader's database already and is never read from Kafka again: deleting it loses nothing. A
partition some group has not committed on yet is left alone (that group would start from its beginning).

Each pass is a few requests (the groups' offsets, one DeleteRecords per leader, only for partitions whose commits
moved since the last pass); a failed pass is logged and the next one tries again. The topic's retention stays as a
backstop for a reader that is away (shared/topics.py).

Deleting moves the partition's log start offset at once: no fetch returns those records again. The bytes leave the
broker's disk when their segment is deleted, which the topic's short `segment.ms` bounds (shared/topics.py).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Sequence

from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.structs import TopicPartition

from shared import kafka_security
from shared.errors import describe
from shared.metrics import TOPIC_TRIMS

log = logging.getLogger(__name__)

# How long one request to the broker may take within a pass; beyond, the pass fails and the next one tries again.
CALL_TIMEOUT = 15.0


def trim_points(topic: str, committed: Sequence[dict[TopicPartition, int]]) -> dict[TopicPartition, int]:
    """Where each partition of `topic` may be cut: below the lowest offset every group in `committed` has committed
    on it. A partition one group has no commit for (absent, or -1) is not cut at all; nor one whose lowest commit is
    0 (nothing to cut). Pure, for the unit test."""
    if not committed:
        return {}
    partitions = set.intersection(*({tp for tp in offsets if tp.topic == topic} for offsets in committed))
    points = {}
    for tp in partitions:
        lowest = min(offsets[tp] for offsets in committed)
        if lowest > 0:
            points[tp] = lowest
    return points


class Trimmer:
    """Deletes from one topic what its reading consumer groups have all committed, every `interval` seconds."""

    def __init__(self, *, service: str, bootstrap: str, topic: str, groups: Sequence[str], interval: float):
        if not groups:
            raise ValueError("a topic is trimmed after its readers: name at least one consumer group")
        self.service = service
        self.topic = topic
        self.groups = tuple(groups)
        self.interval = interval
        self._bootstrap = bootstrap
        self._admin: AIOKafkaAdminClient | None = None
        # The log start offset per partition after the last successful cut: a partition whose commits did not move
        # past it is not asked again (each pass stays a couple of requests on a quiet topic).
        self.cut: dict[TopicPartition, int] = {}

    async def run(self) -> None:
        """Trim every `interval` seconds until cancelled; a failed pass is logged, never raised."""
        try:
            while True:
                try:
                    cut = await self.trim_once()
                    TOPIC_TRIMS.labels(self.service, self.topic, "cut" if cut else "idle").inc()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 — the next pass tries again; the retention is the backstop
                    TOPIC_TRIMS.labels(self.service, self.topic, "failed").inc()
                    log.warning("%s: could not trim %s (%s); trying again in %.0f s", self.service, self.topic,
                                describe(exc), self.interval)
                    await self.close()  # a fresh connection next time: this one may be what failed
                await asyncio.sleep(self.interval)
        finally:
            await self.close()

    async def trim_once(self) -> dict[TopicPartition, int]:
        """One pass: the partitions cut now, each with its new log start offset."""
        admin = await self._connected()
        committed = []
        for group in self.groups:
            offsets = await asyncio.wait_for(admin.list_consumer_group_offsets(group), CALL_TIMEOUT)
            committed.append({tp: meta.offset for tp, meta in offsets.items() if meta.offset is not None})
        points = {tp: offset for tp, offset in trim_points(self.topic, committed).items()
                  if offset > self.cut.get(tp, 0)}
        if not points:
            return {}
        starts = await asyncio.wait_for(
            admin.delete_records({tp: RecordsToDelete(offset) for tp, offset in points.items()},
                                 timeout_ms=int(CALL_TIMEOUT * 1000)),
            CALL_TIMEOUT + 5)
        self.cut.update(starts)
        log.debug("%s: %s cut below %s", self.service, self.topic,
                  {f"{tp.partition}": start for tp, start in sorted(starts.items())})
        return starts

    async def _connected(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, client_id=f"wangge-{self.service}-trim",
                                        request_timeout_ms=int(CALL_TIMEOUT * 1000),
                                        **kafka_security.options(self._bootstrap))
            try:
                await asyncio.wait_for(admin.start(), CALL_TIMEOUT)
            except BaseException:
                await _close_quietly(admin)
                raise
            self._admin = admin
        return self._admin

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            await _close_quietly(admin)


async def _close_quietly(admin: AIOKafkaAdminClient) -> None:
    try:
        await asyncio.wait_for(admin.close(), 5)
    except Exception:  # noqa: BLE001 — a client that never connected, or a broker away: nothing to keep
        pass

"""After each recovery a live instance follows every partition of wangge.cases from the group's committed offset, or
from its beginning when the group never committed one — never from where faust's fetcher happened to stand
(services/supervision/live/resume.py).

faust's step after the recovery resumed the partitions with its flow still on (the fetcher handed the agent records
until the seek, and the ones not yet followed were dropped when faust resumed its flow control), and sought back only
the partitions with a committed offset above 0: a partition the group never committed stayed where the fetcher had
left it. In tests/e2e/test_instances.py that was the end of a partition taken over from a killed instance (its events
followed by nobody). Here the fetcher's run to the end is made certain: the partitions are sought to their end just
before faust's step, as the racing fetcher left them.
"""
from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer

from shared.topics import Topics
from services.supervision.live.bootstrap import build
from tests.integration.test_live_delivery import reports

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

EVENTS = 1000


def cases_in(streams) -> int:
    return sum(1 for _ in list(streams.cases.data.keys()))


async def test_a_partition_never_committed_is_followed_from_its_beginning_not_where_the_fetcher_stood(
        isolated, monkeypatch):
    settings = isolated
    topic = Topics(settings.topic_prefix).cases
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, linger_ms=5)
    await asyncio.wait_for(producer.start(), 30)
    try:
        await asyncio.wait_for(reports(producer, topic, EVENTS), 60)  # a case.reported each of EVENTS new cases
    finally:
        await asyncio.wait_for(producer.stop(), 30)

    # faust's step after the recovery, entered with every partition of wangge.cases at its end (the fetcher's run);
    # and whether the flow was on when it began and when it sought (records handed over before the seek).
    ran_ahead: dict[int, int] = {}
    flow_on_at: list[tuple[str, bool]] = []
    completed, perform_seek = Recovery.on_recovery_completed, Consumer.perform_seek

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        consumer = self.app.consumer
        flow_on_at.append(("step", consumer.flow_active))
        tps = [tp for tp in consumer.assignment() if tp.topic == topic]
        for tp, end in (await consumer.highwaters(*tps)).items():
            await consumer.seek(tp, end)
            ran_ahead[tp.partition] = end
        await completed(self, generation_id)

    async def seek_noting_the_flow(self) -> None:
        flow_on_at.append(("seek", self.flow_active))
        await perform_seek(self)

    monkeypatch.setattr(Recovery, "on_recovery_completed", on_recovery_completed)
    monkeypatch.setattr(Consumer, "perform_seek", seek_noting_the_flow)

    service = build(settings, manage_runtime=False)
    runtime = service.runtime
    streams = runtime.streams  # type: ignore[attr-defined]
    await asyncio.wait_for(runtime.start(), 60)
    try:
        await asyncio.wait_for(runtime.wait_until_consuming(60), 70)  # type: ignore[attr-defined]
        assert sum(ran_ahead.values()) == EVENTS  # every partition stood at its end when faust's step began

        async def every_case() -> None:
            while cases_in(streams) < EVENTS:
                await asyncio.sleep(0.2)

        try:
            await asyncio.wait_for(every_case(), 120)
        except asyncio.TimeoutError:
            pass
        # Every event followed (without the seek to the beginning: none — the partitions stayed at their end).
        assert cases_in(streams) == EVENTS, f"{cases_in(streams)} of {EVENTS} cases followed"
        assert streams.resumed.sought_to_beginning >= len(ran_ahead)
        # Nothing handed over between the partitions' resumption and their seek: the flow was off through both.
        assert ("step", False) in flow_on_at and ("seek", False) in flow_on_at
        assert ("step", True) not in flow_on_at and ("seek", True) not in flow_on_at
    finally:
        await asyncio.wait_for(runtime.stop(), 60)

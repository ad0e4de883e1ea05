"""A case's next event reaches a consumer at once, though idle fetches are parked seconds (shared/kafka.py).

aiokafka asks each broker one fetch at a time and leaves out of it the partitions whose records the member has not
taken yet; parked 3 s, such a fetch made the next record of that partition — a case's second event, a moment after
its first — wait out the park. park_only_whole_fetches parks a fetch long only when it asks for every partition."""
from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer

from shared.contracts.cases import CaseRejected
from shared.kafka import fetch_max_wait_ms
from shared.runtime import ServiceRuntime
from shared.topics import Topics
from tests.support import signature_of

NO_MIGRATIONS = Path(__file__).parent / "no_migrations"
ROUNDS = 5


async def test_the_second_event_of_a_case_is_handled_without_waiting_out_a_parked_fetch(isolated):
    settings = isolated
    assert fetch_max_wait_ms(settings.consumer_lag_interval_seconds) >= 2000  # the park this test is about
    topics = Topics(settings.topic_prefix)  # created by the fixture
    runtime = ServiceRuntime("plumbing", settings, NO_MIGRATIONS)
    handled: dict[str, float] = {}
    arrived = asyncio.Condition()
    slow_started = asyncio.Event()

    async def handle(envelope, uow) -> None:
        reason = envelope.data["reason"]
        if reason.startswith("slow"):
            slow_started.set()
            await asyncio.sleep(0.5)  # a batch that takes a while (a loaded machine, a big batch)
        await uow.claim("plumbing:latency", envelope.id)
        async with arrived:
            handled[reason] = time.monotonic()
            arrived.notify_all()

    runtime.consume([topics.cases], handle)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, acks="all")
    await asyncio.wait_for(runtime.start(), 60)
    await asyncio.wait_for(producer.start(), 20)

    async def send(case_id: str, reason: str) -> float:
        """Publish one event of the case; the moment the broker acknowledged it."""
        value = CaseRejected(case_no="20261207-0001", reason=reason).envelope(source="test", case_id=case_id).to_json()
        await asyncio.wait_for(producer.send_and_wait(
            topics.cases, value, key=case_id.encode(),
            headers=signature_of(value, "intake", topic=topics.cases, key=case_id)), 20)
        return time.monotonic()

    async def handled_at(reason: str) -> float:
        async with arrived:
            await asyncio.wait_for(arrived.wait_for(lambda: reason in handled), 20)
        return handled[reason]

    try:
        await runtime.wait_until_consuming()
        delays = []
        for n in range(ROUNDS):
            case_id = str(uuid.uuid4())
            slow_started.clear()
            await send(case_id, f"slow-{n}")
            await asyncio.wait_for(slow_started.wait(), 20)
            # The case's next event arrives while the member is busy: it waits in the member, and the member's next
            # fetch goes out without its partition.
            await send(case_id, f"meanwhile-{n}")
            await handled_at(f"meanwhile-{n}")
            # The one after that: with that fetch parked seconds, it waited them out.
            acked = await send(case_id, f"next-{n}")
            delays.append(await handled_at(f"next-{n}") - acked)
        # Parked fetches made these 2–3 s each; a loaded machine may delay one or two, not the median.
        assert statistics.median(delays) < 1.0, [round(d, 3) for d in delays]
    finally:
        await asyncio.wait_for(producer.stop(), 20)
        await asyncio.wait_for(runtime.stop(), 30)

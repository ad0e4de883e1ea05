"""Claims (processed_events) are pruned once past any redelivery (shared/claims.py): older than the bound, and only
while every consumer group of the service has committed everywhere and keeps up — on the real Kafka and PostgreSQL."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from shared.claims import prune_once
from shared.runtime import ServiceRuntime
from tests.integration.test_plumbing import NO_MIGRATIONS, _event
from tests.support import eventually, publish

pytestmark = pytest.mark.integration

KEEP = timedelta(days=7)


def pruned_so_far() -> float:
    return REGISTRY.get_sample_value("wangge_claims_pruned_total", {"service": "plumbing"}) or 0.0


async def old_claims(pool, n: int, days: int) -> list[str]:
    ids = [f"old-{days}-{i}" for i in range(n)]
    await pool.execute("""INSERT INTO processed_events (consumer, event_id, processed_at)
                          SELECT 'plumbing:test', unnest($1::text[]), now() - make_interval(days => $2)""", ids, days)
    return ids


async def test_claims_past_the_bound_are_pruned_in_batches_only_while_the_group_keeps_up(isolated):
    runtime = ServiceRuntime("plumbing", isolated, NO_MIGRATIONS)
    gate = asyncio.Event()
    gate.set()

    async def handle(envelope, uow) -> None:
        await asyncio.wait_for(gate.wait(), 60)  # closed: the group falls behind until the test opens it
        await uow.claim("plumbing:test", envelope.id)

    runtime.consume([runtime.topics.cases], handle)
    await asyncio.wait_for(runtime.start(), 60)
    try:
        await runtime.wait_until_consuming(60)
        pool, groups, cases = runtime.pool, runtime.consumers, runtime.consumers[0]

        async def caught_up() -> bool:
            return all([await g.group_behind() == 0 for g in groups])

        async def publish_all(n: int, tag: str) -> list:
            events = [_event(f"case-{tag}{i}") for i in range(n)]
            for envelope in events:
                await publish(isolated.kafka_bootstrap, runtime.topics.cases, envelope, key=envelope.case_id)
            return events

        first = await publish_all(60, "a")  # every partition gets some (and a commit): all but certainly
        await eventually(caught_up, 30)
        stale = await old_claims(pool, 12, days=8)
        young = await old_claims(pool, 3, days=6)

        # Behind (the handler held): nothing is pruned, whatever the age.
        gate.clear()
        later = await publish_all(10, "b")

        assert await cases.group_behind() == 10  # all 10 wait
        assert await prune_once("plumbing", pool, groups, keep=KEEP, batch=5, max_behind=0) == 0
        assert await pool.fetchval("SELECT count(*) FROM processed_events WHERE event_id = ANY($1)", stale) == 12

        # Caught up and committed: the claims past the bound go (in batches of 5), the rest stay.
        gate.set()
        await eventually(caught_up, 30)
        before = pruned_so_far()
        assert await prune_once("plumbing", pool, groups, keep=KEEP, batch=5, max_behind=0) == 12
        assert pruned_so_far() - before == 12
        left = {r["event_id"] for r in await pool.fetch("SELECT event_id FROM processed_events")}
        assert not left & set(stale)
        assert set(young) <= left and {e.id for e in first + later} <= left
        assert await prune_once("plumbing", pool, groups, keep=KEEP, batch=5, max_behind=0) == 0
    finally:
        gate.set()
        await asyncio.wait_for(runtime.stop(), 60)


async def test_a_group_without_a_commit_on_a_partition_with_records_keeps_every_claim(isolated):
    """A group that never committed a partition with records would read it from the earliest record: no pruning."""
    runtime = ServiceRuntime("plumbing", isolated, NO_MIGRATIONS)
    gate = asyncio.Event()

    async def held(envelope, uow) -> None:
        await asyncio.wait_for(gate.wait(), 60)

    runtime.consume([runtime.topics.cases], lambda envelope, uow: asyncio.sleep(0))
    await publish(isolated.kafka_bootstrap, runtime.topics.reports, _event("case-q"), key="case-q")
    # A member of a group on wangge.reports that has not committed its record yet (its handler held).
    runtime.consume([runtime.topics.reports], held, group_suffix="-stuck")
    await asyncio.wait_for(runtime.start(), 60)
    try:
        await runtime.wait_until_consuming(60)
        pool = runtime.pool
        stale = await old_claims(pool, 4, days=30)
        stuck = next(g for g in runtime.consumers if g.group_id.endswith("-stuck"))
        assert await stuck.group_behind() is None
        assert await prune_once("plumbing", pool, runtime.consumers, keep=KEEP, batch=100, max_behind=10**6) == 0
        assert await pool.fetchval("SELECT count(*) FROM processed_events WHERE event_id = ANY($1)", stale) == 4
    finally:
        gate.set()
        await asyncio.wait_for(runtime.stop(), 60)

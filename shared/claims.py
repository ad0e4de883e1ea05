"""Pruning the claims (processed_events): every consumer records one row per event it applied, forever, unless pruned.

The rule. A claim is there so that an event handed to its consumer again changes nothing. An event comes again when
(a) the service stopped between its database commit and the Kafka offset commit (the record is at or after the group's
committed offset), (b) a producer's relay sent it again after a crash (a duplicate appended just after the original),
(c) it is one the service decided and claimed itself (supervision's case events), coming back through its outbox and
Kafka, or (d) the group has no committed offset for a partition (a new group, or offsets Kafka expired after the
group stayed empty for offsets.retention.minutes) and reads it from the earliest record kept (wangge.cases keeps all).

So a claim is deleted when it is older than WANGGE_CLAIMS_KEEP_HOURS (7 days) AND, at that moment, every consumer
group of the service has committed offsets on every partition that holds records and is at most
WANGGE_CLAIMS_PRUNE_MAX_BEHIND records (10,000) behind in all. Then every record the group may still be handed is one of
the last few thousand of its partitions: (a) and (b) could reach a claim older than the bound only if a record stayed
uncommitted, or a duplicate was appended, a week after its claim — a service down that long, whose group's offsets
Kafka has expired meanwhile, which is (d). (c) only if the service's outbox could not reach Kafka for a week (its
backlog metric and alert say so long before). (d) while a group replays from the earliest record, it is far behind:
nothing is pruned until it has caught up, so its own claims protect the replay. What no bound protects: a service
down longer than offsets.retention.minutes replays from the beginning, and the claims of events older than the bound
were gone before it stopped; keep the broker's offsets.retention.minutes above the longest outage you plan for.

Cheap: found through a BRIN index on processed_at (shared/sql/007_claims_pruning.sql), deleted in batches of
WANGGE_CLAIMS_PRUNE_BATCH rows, one short transaction each, every WANGGE_CLAIMS_PRUNE_SECONDS (1 h).
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Protocol, Sequence

import asyncpg

from shared import periodic
from shared.clock import Clock
from shared.metrics import CLAIMS_PRUNED

log = logging.getLogger(__name__)

# Batches per turn at most: a backlog (the first run on a table that grew for months) is worked off over turns.
MAX_BATCHES_PER_TURN = 100


class Group(Protocol):
    group_id: str

    async def group_behind(self) -> int | None: ...


async def prune_before(pool: asyncpg.Pool, before: datetime, batch: int) -> int:
    """Delete at most `batch` claims recorded before `before`; how many were."""
    async with pool.acquire() as conn:
        deleted = await conn.fetchval(
            """WITH gone AS (
                   DELETE FROM processed_events WHERE ctid = ANY(ARRAY(
                       SELECT ctid FROM processed_events WHERE processed_at < $1 LIMIT $2))
                   RETURNING 1)
               SELECT count(*) FROM gone""", before, batch)
    return int(deleted or 0)


async def groups_keep_up(groups: Sequence[Group], max_behind: int) -> str | None:
    """None if every group has committed everywhere and is at most `max_behind` records behind in all; else why not."""
    for group in groups:
        behind = await group.group_behind()
        if behind is None:
            return f"{group.group_id} has a partition without a committed offset (or is not running)"
        if behind > max_behind:
            return f"{group.group_id} is {behind} records behind (more than {max_behind})"
    return None


async def prune_once(service: str, pool: asyncpg.Pool, groups: Sequence[Group], *, keep: timedelta, batch: int,
                     max_behind: int, clock: Clock | None = None) -> int:
    """One turn: the claims older than `keep`, if every group keeps up (the module's rule); how many were deleted."""
    why_not = await groups_keep_up(groups, max_behind)
    if why_not is not None:
        log.info("claims not pruned this time: %s", why_not)
        return 0
    before = (clock or Clock()).now() - keep
    total = 0
    for _ in range(MAX_BATCHES_PER_TURN):
        deleted = await prune_before(pool, before, batch)
        total += deleted
        CLAIMS_PRUNED.labels(service).inc(deleted)
        if deleted < batch:
            break
        await asyncio.sleep(0)  # let the consumers have the pool between batches
    if total:
        log.info("claims pruned: %d recorded before %s", total, before.isoformat())
    return total


def pruning_loop(service: str, pool_of, groups: Sequence[Group], *, every: float, keep: timedelta, batch: int,
                 max_behind: int):
    """A worker (ServiceRuntime's watchdog runs it): prune_once every `every` seconds, the first after one period
    (a service just started has not committed everywhere yet)."""
    return periodic.every(every, lambda: prune_once(service, pool_of(), groups, keep=keep, batch=batch,
                                                    max_behind=max_behind), "pruning claims", first_after=True)

"""Case numbers handed out from blocks reserved on the day's counter row (migration 004).

Reserving is one statement of its own, committed at once: a report's transaction never holds the counter's
row lock, so reports of the same day no longer wait on one another. Numbers stay unique per street and day
(every instance reserves disjoint blocks from the same row); a number reserved and never used is listed by
the view case_number_gaps.
"""
from __future__ import annotations

import asyncio
import bisect
import time
from collections import deque
from datetime import date
from typing import Callable

import asyncpg

from services.intake.domain.case_numbers import LARGEST_BLOCK, block_size

_RESERVE = """
WITH counter AS (
    INSERT INTO case_numbers (day, last) VALUES ($1, $2)
    ON CONFLICT (day) DO UPDATE SET last = case_numbers.last + $2
    RETURNING last)
INSERT INTO case_number_blocks (day, first, last)
SELECT $1, last - $2 + 1, last FROM counter
RETURNING first, last"""


async def reserve_block(conn: asyncpg.Connection | asyncpg.Pool, day: date, size: int) -> range:
    """Reserve the next `size` numbers of the day (committed at once) and record the block."""
    row = await conn.fetchrow(_RESERVE, day, size)
    return range(row["first"], row["last"] + 1)


class CaseNumbers:
    """The numbers of the day this instance reserved and has not handed out yet, lowest first."""

    def __init__(self, pool_of: Callable[[], asyncpg.Pool], largest: int = LARGEST_BLOCK):
        self._pool_of = pool_of
        self._largest = largest
        self._day: date | None = None
        self._free: list[int] = []
        self._taken: deque[float] = deque()  # when numbers were taken, for the next block's size
        self._refill = asyncio.Lock()

    async def take(self, day: date) -> int:
        """The next free number of `day`, reserving a block when none is left.

        Call it holding no connection of the pool, or holding one among fewer than the pool's size: the
        reservation takes a connection of its own, so that it commits apart from the caller's transaction.
        """
        return (await self.take_many(day, 1))[0]

    async def take_many(self, day: date, count: int) -> list[int]:
        """The next `count` free numbers of `day`, lowest first (a partition's batch of reports numbered in its
        order): one reservation at most for the lot, of a block at least as large as what is missing."""
        for _ in range(count):
            self._note_taken()
        taken: list[int] = []
        while len(taken) < count:
            if self._day == day and self._free:
                share = min(count - len(taken), len(self._free))
                taken += self._free[:share]
                del self._free[:share]
                continue
            async with self._refill:
                if self._day == day and self._free:
                    continue
                size = max(block_size(len(self._taken), self._largest), count - len(taken))
                block = await reserve_block(self._pool_of(), day, size)
                if self._day != day:  # a new day: what is left of yesterday's block stays a recorded gap
                    self._day, self._free = day, []
                self._free.extend(block)
        return taken

    def give_back(self, day: date, sequence: int) -> None:
        """A number taken and not used (the report was already a case): the next report gets it."""
        if day == self._day and sequence not in self._free:
            bisect.insort(self._free, sequence)

    def _note_taken(self) -> None:
        moment = time.monotonic()
        self._taken.append(moment)
        while self._taken and self._taken[0] < moment - 1.0:
            self._taken.popleft()

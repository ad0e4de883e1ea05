"""Every changelog write delivered before faust commits the offsets of the events that made it.

faust (at least once) commits an event's source offset after flushing its producer, and on a revocation it flushes
the producer before letting the partitions go; the table rows are written to the changelogs through that producer's
buffer (`send_soon`). But the buffer's flush (faust/transport/producer.py, ProducerBuffer.flush_atmost) does not wait
for those writes: it returns when no send completes within 0.1 s, and it looks only at the queue, not at the write its
sender took out of the queue and is still handing to aiokafka (whose own flush cannot know of it yet). So an offset
could be committed while the rows its events wrote were still in this process: a SIGKILL then lost them for good
(the next owner of the partition recovers the changelog and resumes after the committed offset, never replaying the
events), and a survivor's recovery after a rebalance could read a changelog that ended before its own last writes.
Seen as live figures a few cases short after one instance of three was killed (tests/e2e/test_instances.py, one run
in four), and in the logs as "faust's flush left N changelog writes undelivered" (logged below at each commit it happens: up
to 99 writes at once in that test).

The fix: the buffer's `put` keeps each write's future until Kafka acknowledged it, and its `flush` (the one faust
awaits before each commit and each revocation) awaits every write put before it, bounded; a write that fails or is
not acknowledged in time fails the flush, so faust commits nothing and the events are read again by whoever holds
their partition (following an event twice changes no figure).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

# Kafka acknowledges a write in milliseconds; a broker failing over takes seconds. Under the group's session timeout
# (15 s), so a revocation waiting here still finishes in its rebalance.
DELIVERY_TIMEOUT_SECONDS = 10.0


class DeliveredBeforeCommit:
    """Wraps a faust producer buffer's put and flush (see the module's docstring)."""

    def __init__(self, buffer: Any, timeout: float = DELIVERY_TIMEOUT_SECONDS):
        self.timeout = timeout
        self.outstanding: set[asyncio.Future[Any]] = set()
        # How many writes faust's own flush had left undelivered, over the process's life (the evidence, and a test's).
        self.left_by_faust = 0
        self._put, self._flush = buffer.put, buffer.flush
        buffer.put, buffer.flush = self.put, self.flush

    def put(self, fut: asyncio.Future[Any]) -> None:
        self.outstanding.add(fut)
        fut.add_done_callback(self.outstanding.discard)
        self._put(fut)

    async def flush(self) -> None:
        await self._flush()  # faust's: hands what it can to aiokafka
        waiting = [fut for fut in self.outstanding if not fut.done()]
        if not waiting:
            return
        self.left_by_faust += len(waiting)
        log.info("live: faust's flush left %d changelog writes undelivered; waiting for them before the commit",
                    len(waiting))
        done, pending = await asyncio.wait(waiting, timeout=self.timeout)
        failed = [fut for fut in done if not fut.cancelled() and fut.exception() is not None]
        if pending or failed:
            raise RuntimeError(f"{len(pending)} changelog writes not acknowledged within {self.timeout:.0f} s and "
                               f"{len(failed)} failed: the offsets of their events are not committed")

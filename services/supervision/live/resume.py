"""Every partition of wangge.cases a live instance is given is followed from the group's committed offset (or from
its beginning), never from where faust's fetcher happened to stand.

After each rebalance faust recovers the tables, then (faust/tables/recovery.py, Recovery.on_recovery_completed)
resumes the source partitions and seeks them to the group's committed offsets. Two faults in that step lost events
for good (tests/e2e/test_instances.py: after one live instance of three was SIGKILLed, a survivor given one of its
partitions followed it from the stream's end, offset 287, where the killed member had followed it only to 23):
1. The partitions are resumed while the consumer's flow is still on (the recovery turned it on to read the
   changelogs), and the seek is a call queued in the consumer's thread behind a fetch: for a second or two the
   fetcher hands the agent records from wherever aiokafka stands. Right after the seek faust resumes its flow
   control, which empties the streams' queues: the records handed over meanwhile and not yet followed are dropped,
   and faust's read offset, moved past them, can make it skip them when they are fetched again. Seen in the
   survivors' logs (faust's and aiokafka's offsets logged at each seek): events followed before the seek; a
   partition fetched to 131 while followed to 11, sought back to its committed 4, its next record followed at 12 with
   5–11 counted as a "gap" (acknowledged without being followed again).
2. aiokafka's seek_to_committed seeks only a partition with a committed offset above 0: one the group never
   committed stays where the fetcher left it in 1 — the end, if the fetcher got that far.
The fix, on faust's own recovery and consumer: the flow is stopped before that step (nothing is handed over until the
seek is done; faust's step turns the flow on again after it), and a source partition with no committed offset is
sought to its beginning (the group's auto_offset_reset, "earliest"). An event followed again after such a seek
changes no figure (every table is keyed by case).
"""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


class ResumedAtCommitted:
    """Wraps faust's Recovery.on_recovery_completed and its consumer's seek_to_committed (see the module's docstring)."""

    def __init__(self, app: Any, source_topics: set[str]):
        self.app = app
        self.source_topics = source_topics
        # How many partitions were sought to their beginning for want of a committed offset (the evidence, a test's).
        self.sought_to_beginning = 0
        recovery, consumer = app.tables.recovery, app.consumer
        self._completed, self._seek_to_committed = recovery.on_recovery_completed, consumer.seek_to_committed
        recovery.on_recovery_completed = self.on_recovery_completed
        consumer.seek_to_committed = self.seek_to_committed

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        # Stopped, the fetcher hands nothing over (and a fetch under way when it stopped is thrown away and sought
        # back, faust's own "getmany called while flow not active"); faust's step turns the flow on after its seek.
        self.app.consumer.stop_flow()
        await self._completed(generation_id)

    async def seek_to_committed(self) -> Any:
        committed = await self._seek_to_committed()
        # aiokafka leaves a partition without a committed offset (None, or 0: nothing to seek) where it stood.
        never = [tp for tp, offset in committed.items()
                 if tp.topic in self.source_topics and (offset is None or offset <= 0)]
        if never:
            await self.app.consumer._thread.seek_to_beginning(*never)
            self.sought_to_beginning += len(never)
            log.info("live: partitions %s of %s had no committed offset: followed from their beginning",
                     sorted(tp.partition for tp in never), ", ".join(sorted({tp.topic for tp in never})))
        return committed

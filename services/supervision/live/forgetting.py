"""Which finished cases the cases table may forget now: those closed, rejected or merged long enough ago.

The figures count the open cases (and today's windows, kept in tables of their own), yet the cases table held every
case it ever saw, so a restarted process read the street's whole history from its changelog before its figures were
whole (minutes after a year). A finished case's row is still needed while an event of it may come and use it: a
reopening within the survey window (7 days unless configured; its redispatch then carries the case's grid again).
After FORGET_AFTER it is deleted: a tombstone on the compacted changelog, which the broker then drops with the row.

faust writes a deletion to the changelog partition of the event in hand, which must be the case's own (streams.py),
so the finished cases are queued per partition of wangge.cases, oldest first, and a partition's are forgotten while
one of its events is handled. A queued case whose row changed since (reopened, closed again later) is checked again
when its turn comes, against its row as it is then.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from heapq import heappop, heappush
from typing import Any, Callable, Iterable

from services.supervision.live import figures as live

# Well past the survey window a street is given by default (7 days); a street that keeps a longer window sees a case
# reopened after this shown without its grid until its redispatch (seconds later).
FORGET_AFTER = timedelta(days=30)
# At most this many rows deleted while one event is handled: a process that starts with a year of finished cases
# sheds them over its next events, not in one long stall of the agent.
MOST_AT_ONCE = 50


class Forgetting:
    """The finished cases of each partition, in the order they may be forgotten."""

    def __init__(self, partition_of: Callable[[str], int], after: timedelta = FORGET_AFTER):
        self._partition_of = partition_of
        self._after = after
        self._due: dict[int, list[tuple[float, str]]] = {}  # partition → heap of (forgettable from, case id)

    @classmethod
    def of(cls, cases: Iterable[tuple[str, Any]], partition_of: Callable[[str], int],
           after: timedelta = FORGET_AFTER) -> "Forgetting":
        forgetting = cls(partition_of, after)
        for case_id, case in cases:
            forgetting.filed(case_id, case)
        return forgetting

    def forgettable_from(self, case: Any) -> datetime | None:
        """From when a row may be forgotten (None: an open case, or no row)."""
        # A row is a dict (faust's memory store keeps what was set); typing's Mapping made every check a slow
        # subclass hook, which at start-up ran once per case of the table.
        finished = live.finished_at(case) if isinstance(case, dict) else None
        return None if finished is None else finished + self._after

    def filed(self, case_id: str, case: Any) -> None:
        """A case's row as it is now: queued if it is finished."""
        moment = self.forgettable_from(case)
        if moment is not None:
            heappush(self._due.setdefault(self._partition_of(case_id), []), (moment.timestamp(), case_id))

    def due(self, partition: int, at: datetime, row_of: Callable[[str], Any],
            most: int = MOST_AT_ONCE) -> list[str]:
        """The cases of a partition to forget at `at`, judged on their rows now (`row_of`), at most `most`."""
        queue = self._due.get(partition)
        found: list[str] = []
        moment = at.timestamp()
        while queue and queue[0][0] <= moment and len(found) < most:
            _, case_id = heappop(queue)
            if case_id in found:
                continue  # queued twice (filed again when closed again): once is enough
            from_ = self.forgettable_from(row_of(case_id))
            if from_ is None:
                continue  # reopened since, or gone already
            if from_.timestamp() > moment:
                heappush(queue, (from_.timestamp(), case_id))  # finished again later: its turn comes then
                continue
            found.append(case_id)
        return found

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._due.values())

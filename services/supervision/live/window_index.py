"""The rows of a windowed table grouped by (key, window start), kept as they are written.

The figures read today's windows at every scrape and every screen refresh; the table holds two days of cases, and
walking all of its rows each time cost a third of the live process's CPU in a burst (300 ms a scrape at 37,000
cases). The groups are built from the table once, kept up to date by each write, and built anew after anything that
changes the table behind the writes' back (a recovery, a rebalance).
"""
from __future__ import annotations

import time
from typing import Any, Callable

Windows = list[tuple[str, float, list[str]]]
Counted = list[tuple[str, float, int]]


class WindowIndex:
    """Case ids per (key_of(row), window start) of one faust windowed table (a WindowWrapper)."""

    def __init__(self, table: Any, key_of: Callable[[Any], str | None], keep_seconds: float):
        self.table = table
        self.key_of = key_of
        # Older windows are dropped from the groups: the figures read today's and the last hour's only, and faust
        # expires the table's own rows after this long.
        self.keep_seconds = keep_seconds
        self._groups: dict[tuple[str, float], set[str]] | None = None

    def forget(self) -> None:
        """The table changed wholesale (recovered, emptied at a rebalance): build the groups again when next read."""
        self._groups = None

    def written(self, case_id: str, row: Any, moment: float | None) -> None:
        """The table's row of `case_id` was set at `moment` (None: a moment this index cannot place the row by)."""
        if self._groups is None:
            return
        if moment is None:
            self._groups = None
            return
        key = self.key_of(row) if isinstance(row, dict) else None
        if key:
            for start, _end in self.table.table.window.ranges(moment):
                self._groups.setdefault((key, start), set()).add(case_id)

    def windows(self, keep: Callable[[Any], bool] | None = None) -> Windows:
        """(key, window start, case ids) of each window; only the rows whose table key `keep` accepts, if given (an
        instance's share: read from the table itself)."""
        if keep is not None:
            return [(key, start, sorted(ids)) for (key, start), ids in self._scan(keep).items()]
        # Copied, so a reader holds them while events add to the groups.
        return [(key, start, list(ids)) for (key, start), ids in self._kept().items()]

    def counted(self, since: float | None = None) -> Counted:
        """(key, window start, cases in it) of each window starting at `since` or later (all, if None): what the
        figures show, without copying the windows' case ids (a copy of the day's ids was most of a scrape's cost)."""
        return [(key, start, len(ids)) for (key, start), ids in self._kept().items() if since is None or start >= since]

    def _kept(self) -> dict[tuple[str, float], set[str]]:
        """The groups, built if they are not, without the windows older than kept."""
        if self._groups is None:
            self._groups = self._scan(None)
        oldest = time.time() - self.keep_seconds
        for stale in [group for group in self._groups if group[1] < oldest]:
            del self._groups[stale]
        return self._groups

    def _scan(self, keep: Callable[[Any], bool] | None) -> dict[tuple[str, float], set[str]]:
        grouped: dict[tuple[str, float], set[str]] = {}
        for stored, row in list(self.table.table.data.items()):
            if keep is not None and not keep(stored):
                continue
            case_id, window = stored
            key = self.key_of(row) if isinstance(row, dict) else None
            if key:
                grouped.setdefault((key, window[0]), set()).add(case_id)
        return grouped

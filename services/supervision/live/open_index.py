"""The open cases counted per unit grid as they change, and the overdue among them at any moment.

The figures count the open and the overdue cases at every scrape and every screen refresh. Asking each open case
again (its deadline parsed, the rule applied) made each of them cost in proportion to the open cases. A case's answer changes only when its facts do, or when the clock passes its deadline: so each case is filed
once per change under its unit grid — open, overdue whatever the moment, or overdue from its deadline on (kept
sorted) — and the overdue at a moment are those filed as always plus the deadlines at or before it (a bisection).
The rule stays domain/overdue.py's (`overdue_from`); tests/unit/test_open_index.py holds the counts to a walk.
"""
from __future__ import annotations

from bisect import bisect_right, insort
from datetime import datetime
from typing import Any, Iterable, Mapping

from services.supervision.domain.overdue import ALREADY
from services.supervision.live import figures as live

_NEVER, _ALWAYS = "never", "always"


class _Grid:
    __slots__ = ("open", "always", "deadlines")

    def __init__(self) -> None:
        self.open = 0
        self.always = 0
        self.deadlines: list[float] = []  # epoch seconds, sorted: overdue from each on


class OpenIndex:
    """The open cases (the screen's row of each), each one's unit grid and since when it is overdue, and the counts
    per unit grid they add up to."""

    def __init__(self) -> None:
        self._filed: dict[str, tuple[str | None, float | str, Mapping[str, Any]]] = {}  # grid, overdue from, row
        self._grids: dict[str | None, _Grid] = {}

    @classmethod
    def of(cls, cases: Iterable[tuple[str, Mapping[str, Any]]]) -> "OpenIndex":
        index = cls()
        for case_id, case in cases:
            index.set(case_id, case)
        return index

    def set(self, case_id: str, case: Mapping[str, Any] | None) -> None:
        """The screen's facts of a case now (None, not a row, or a finished case: no longer open)."""
        self._unfile(case_id)
        if not isinstance(case, dict) or not live.is_open(case):  # a row is a dict; typing.Mapping checks are slow
            return
        since = live.overdue_since(case)
        when: float | str = _NEVER if since is None else _ALWAYS if since == ALREADY else since.timestamp()
        grid = case.get("unit_grid") or None
        entry = self._grids.get(grid)
        if entry is None:
            entry = self._grids[grid] = _Grid()
        entry.open += 1
        if when == _ALWAYS:
            entry.always += 1
        elif when != _NEVER:
            insort(entry.deadlines, when)  # type: ignore[arg-type]
        self._filed[case_id] = (grid, when, case)

    def _unfile(self, case_id: str) -> None:
        filed = self._filed.pop(case_id, None)
        if filed is None:
            return
        grid, when, _ = filed
        entry = self._grids[grid]
        entry.open -= 1
        if when == _ALWAYS:
            entry.always -= 1
        elif when != _NEVER:
            del entry.deadlines[bisect_right(entry.deadlines, when) - 1]  # type: ignore[arg-type]
        if entry.open == 0:
            del self._grids[grid]

    def counts(self, at: datetime) -> live.OpenCounts:
        """[open, overdue at `at`] per unit grid, as live.open_counts gives them by asking every case."""
        moment = at.timestamp()
        return {grid: [entry.open, entry.always + bisect_right(entry.deadlines, moment)]
                for grid, entry in self._grids.items()}

    def rows(self) -> list[tuple[str, Mapping[str, Any]]]:
        """Each open case's id and row, as last set."""
        return [(case_id, row) for case_id, (_, _, row) in self._filed.items()]

    def __len__(self) -> int:
        return len(self._filed)

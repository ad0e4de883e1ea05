"""The open and overdue cases counted as they change (services/supervision/live/open_index.py) give, at any moment,
what asking every case gives (live.open_counts, the rule of domain/overdue.py)."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from services.supervision.live import figures as live
from services.supervision.live.open_index import OpenIndex

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=timezone(timedelta(hours=8)))
GRIDS = ["G1", "G2", "G3", None]
TYPES = ["case.reported", "case.accepted", "case.dispatched", "case.signed", "case.suspended", "case.resumed",
         "case.overdue", "case.extension-decided", "case.resolved", "case.returned", "case.closed", "case.reopened",
         "case.rejected", "case.merged"]


def _event(rng: random.Random) -> tuple[str, dict]:
    kind = rng.choice(TYPES)
    data: dict = {}
    grid = rng.choice(GRIDS)
    if grid and rng.random() < 0.5:
        data["unit_grid"] = grid
    if kind in ("case.dispatched", "case.resumed", "case.extension-decided"):
        data["due_at"] = (T0 + timedelta(minutes=rng.randint(-600, 600))).isoformat()
    if kind == "case.overdue":
        data["stage"] = rng.choice(["handling", "handling", "check"])
    return kind, data


def _moments(rng: random.Random) -> list[datetime]:
    return [T0 + timedelta(minutes=rng.randint(-700, 700)) for _ in range(5)] + [T0]


@pytest.mark.parametrize("seed", range(20))
def test_the_counts_kept_as_cases_change_are_the_counts_of_asking_every_case(seed):
    rng = random.Random(seed)
    cases: dict[str, dict] = {}
    index = OpenIndex()
    for step in range(400):
        case_id = f"c{rng.randint(1, 40)}"
        kind, data = _event(rng)
        cases[case_id] = live.fold(cases.get(case_id), kind, data, (T0 + timedelta(seconds=step)).isoformat())
        index.set(case_id, cases[case_id])
        if step % 50 == 0:
            for at in _moments(rng):
                assert index.counts(at) == live.open_counts(cases.values(), at), (seed, step, at)
    for at in _moments(rng):
        assert index.counts(at) == live.open_counts(cases.values(), at)
        assert OpenIndex.of(cases.items()).counts(at) == index.counts(at)  # built at once from the table: the same
    assert len(index) == sum(live.is_open(c) for c in cases.values())


def test_a_running_case_turns_overdue_when_the_clock_passes_its_deadline_and_a_late_suspended_one_stays():
    index = OpenIndex()
    due = T0 + timedelta(hours=2)
    index.set("c1", {"state": "dispatched", "unit_grid": "G1", "due_at": due.isoformat()})
    index.set("c2", {"state": "suspended", "unit_grid": "G1", "overdue": True})
    index.set("c3", {"state": "suspended", "unit_grid": "G1", "overdue": False})
    index.set("c4", {"state": "resolved", "unit_grid": "G2", "due_at": (T0 - timedelta(days=1)).isoformat()})
    assert index.counts(T0) == {"G1": [3, 1], "G2": [1, 0]}
    assert index.counts(due - timedelta(microseconds=1)) == {"G1": [3, 1], "G2": [1, 0]}
    assert index.counts(due) == {"G1": [3, 2], "G2": [1, 0]}  # at its deadline: overdue (domain/overdue.py)
    index.set("c1", {"state": "closed", "unit_grid": "G1", "due_at": due.isoformat()})
    index.set("c4", None)
    assert index.counts(due) == {"G1": [2, 1]}
    assert len(index) == 2

"""Which finished cases the live cases table forgets (services/supervision/live/forgetting.py): a case closed,
rejected or merged FORGET_AFTER ago, judged on its row when its turn comes; an open or reopened one never; each
partition's own, a bounded number at a time."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.supervision.live import figures as live
from services.supervision.live.forgetting import FORGET_AFTER, Forgetting

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=timezone(timedelta(hours=8)))


def _case(*steps: tuple[str, dict, datetime]) -> dict:
    row = None
    for kind, data, at in steps:
        row = live.fold(row, kind, data, at.isoformat())
    assert row is not None
    return row


def _accepted(at: datetime = T0) -> list[tuple[str, dict, datetime]]:
    return [("case.reported", {"case_no": "20261207-0001", "unit_grid": "G1"}, at),
            ("case.accepted", {"category": "CM04", "unit_grid": "G1"}, at)]


def _closed(at: datetime) -> tuple[str, dict, datetime]:
    return ("case.closed", {"closed_at": at.isoformat()}, at + timedelta(seconds=3))


def _by_first_letter(case_id: str) -> int:
    return 0 if case_id.startswith("a") else 1


def test_a_case_is_forgotten_from_forget_after_its_closing_and_an_open_one_never():
    closed_at = T0 + timedelta(days=2)
    rows = {"a-closed": _case(*_accepted(), _closed(closed_at)), "a-open": _case(*_accepted())}
    forgetting = Forgetting.of(rows.items(), _by_first_letter)
    assert len(forgetting) == 1
    just_before = closed_at + FORGET_AFTER - timedelta(seconds=1)
    assert forgetting.due(0, just_before, rows.get) == []
    # from its closed_at (the check's moment), not from when its event was written
    assert forgetting.due(0, closed_at + FORGET_AFTER, rows.get) == ["a-closed"]
    assert forgetting.due(0, closed_at + 10 * FORGET_AFTER, rows.get) == []  # each once


def test_a_rejected_or_merged_case_is_forgotten_from_its_event():
    rejected_at = T0 + timedelta(hours=1)
    rows = {"a-rejected": _case(("case.reported", {"unit_grid": "G1"}, T0), ("case.rejected", {}, rejected_at)),
            "a-merged": _case(("case.reported", {"unit_grid": "G1"}, T0), ("case.merged", {}, rejected_at))}
    assert live.finished_at(rows["a-rejected"]) == rejected_at
    forgetting = Forgetting.of(rows.items(), _by_first_letter)
    assert sorted(forgetting.due(0, rejected_at + FORGET_AFTER, rows.get)) == ["a-merged", "a-rejected"]


def test_a_case_reopened_after_it_was_queued_is_kept_and_one_closed_again_waits_for_its_new_closing():
    first = T0 + timedelta(days=1)
    rows = {"a-1": _case(*_accepted(), _closed(first)), "a-2": _case(*_accepted(), _closed(first))}
    forgetting = Forgetting.of(rows.items(), _by_first_letter)
    # the resident said it is not solved: the first is open again; the second is reopened and closed again later
    rows["a-1"] = live.fold(rows["a-1"], "case.reopened", {}, (first + timedelta(days=2)).isoformat())
    assert live.finished_at(rows["a-1"]) is None and live.is_open(rows["a-1"])
    again = first + timedelta(days=5)
    for kind, data, at in [("case.reopened", {}, first + timedelta(days=2)), _closed(again)]:
        rows["a-2"] = live.fold(rows["a-2"], kind, data, at.isoformat())
        forgetting.filed("a-2", rows["a-2"])
    assert forgetting.due(0, first + FORGET_AFTER, rows.get) == []
    assert forgetting.due(0, again + FORGET_AFTER, rows.get) == ["a-2"]


def test_only_the_partition_in_hand_is_forgotten_and_at_most_so_many_at_once():
    closed_at = T0 + timedelta(days=1)
    rows = {f"{letter}-{n}": _case(*_accepted(), _closed(closed_at + timedelta(minutes=n)))
            for letter in "ab" for n in range(5)}
    forgetting = Forgetting.of(rows.items(), _by_first_letter)
    late = closed_at + FORGET_AFTER + timedelta(days=1)
    first = forgetting.due(0, late, rows.get, most=3)
    assert first == ["a-0", "a-1", "a-2"]  # oldest first
    for case_id in first:
        del rows[case_id]
    assert forgetting.due(0, late, rows.get, most=3) == ["a-3", "a-4"]
    assert forgetting.due(1, late, rows.get) == [f"b-{n}" for n in range(5)]


def test_a_row_from_before_finishes_were_dated_is_forgotten_from_its_closing_or_its_report():
    closed = {"state": "closed", "closed_at": T0.isoformat(), "reported_at": (T0 - timedelta(days=1)).isoformat()}
    rejected = {"state": "rejected", "reported_at": T0.isoformat()}
    assert live.finished_at(closed) == T0 and live.finished_at(rejected) == T0
    assert live.finished_at({"state": "dispatched", "reported_at": T0.isoformat()}) is None

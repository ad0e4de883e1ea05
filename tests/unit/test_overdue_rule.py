"""超期 now: the one rule (services/supervision/domain/overdue.py) on the cases at its edges, and the big screen's
fold reaching the same answers from the events alone. The SQL form is held to the same answers against
PostgreSQL in tests/integration/test_overdue_now.py."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.supervision.domain.overdue import clears_overdue, is_overdue, overdue_sql
from services.supervision.domain.read_model import case_columns
from services.supervision.live import figures as live
from shared.contracts import cases as c

CST = timezone(timedelta(hours=8))
AT = datetime(2026, 12, 2, 10, 0, tzinfo=CST)
SECOND = timedelta(seconds=1)

# (state, due_at, overdue mark, overdue at AT?)
EDGES = [
    ("dispatched", AT - SECOND, False, True),       # due a second ago, not signed: late even before the poller fires
    ("in_progress", AT - SECOND, True, True),
    ("in_progress", AT, False, True),               # due this very moment
    ("in_progress", AT + SECOND, False, False),     # due in a second
    ("dispatched", None, False, False),             # no deadline
    ("suspended", AT - timedelta(hours=1), True, True),   # suspended after it went overdue
    ("suspended", AT - timedelta(hours=1), False, False),  # suspended in time: its clock stopped before the deadline
    ("resolved", AT - timedelta(hours=1), True, False),    # resolved late: waiting for the check, no clock runs
    ("explained", AT - timedelta(hours=1), True, False),
    ("closed", AT - timedelta(hours=1), True, False),       # closed late: closed_on_time counts it, not overdue now
    ("returned", AT - timedelta(hours=1), True, False),     # back at the command center
    ("rework", AT - timedelta(hours=1), True, False),
    ("reopened", AT - timedelta(hours=1), True, False),
    ("accepted", None, False, False),
    (None, AT - SECOND, False, False),
]


@pytest.mark.parametrize(("state", "due_at", "marked", "expected"), EDGES)
def test_the_rule_at_its_edges(state, due_at, marked, expected):
    assert is_overdue(state, due_at, marked, AT) is expected


@pytest.mark.parametrize(("state", "due_at", "marked", "expected"), EDGES)
def test_the_big_screen_reads_the_same_rule(state, due_at, marked, expected):
    kept = {"state": state, "due_at": due_at.isoformat() if due_at else None, "overdue": marked}
    assert live.is_overdue(kept, AT) is expected


def test_the_sql_form_names_the_same_states_and_never_answers_null():
    sql = overdue_sql("$4", "c")
    assert "c.state IN ('dispatched', 'in_progress') AND c.due_at IS NOT NULL AND c.due_at <= $4" in sql
    assert "c.state = 'suspended' AND c.overdue_at IS NOT NULL" in sql
    assert sql.count("IS NOT NULL") == 4  # state (twice), due_at, overdue_at: never NULL, so `= false` works


def test_only_a_deadline_still_ahead_clears_the_overdue_mark():
    assert clears_overdue(AT + SECOND, AT)
    assert not clears_overdue(AT, AT)  # resumed with no time left: still late
    assert not clears_overdue(None, AT)


def _decided(due_at: datetime) -> c.CaseExtensionDecided:
    return c.CaseExtensionDecided(case_no="20261202-0001", owner="huanwei", approved=True, due_at=due_at, by="operator:x")


def test_the_read_model_and_the_big_screen_clear_the_mark_alike():
    ahead, behind = _decided(AT + timedelta(hours=4)), _decided(AT - SECOND)
    assert case_columns(ahead, ahead.TYPE, AT)["overdue_at"] is None
    assert "overdue_at" not in case_columns(behind, behind.TYPE, AT)
    marked = {"state": "in_progress", "due_at": (AT - SECOND).isoformat(), "overdue": True}
    for event, cleared in ((ahead, True), (behind, False)):
        after = live.fold(marked, event.TYPE, event.model_dump(mode="json"), AT.isoformat())
        assert after["overdue"] is (not cleared)
    resumed = c.CaseResumed(case_no="20261202-0001", owner="huanwei", by="owner:huanwei", due_at=AT)
    assert "overdue_at" not in case_columns(resumed, resumed.TYPE, AT)  # no time was left: still overdue
    suspended = live.fold(marked, "case.suspended", {"reason": "等待居民"}, AT.isoformat())
    assert live.is_overdue(suspended, AT + timedelta(days=1))  # a late case suspended stays late

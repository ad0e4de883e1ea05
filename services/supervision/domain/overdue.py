"""超期 now: the one rule every screen and figure counts by. Pure.

A case is overdue at a moment when
- its owner holds it with the handling clock running (dispatched, in_progress: clocks.RUNNING_STATES) and its
  deadline in force (`due_at`: the dispatch's, moved by an approved extension or a resumption) is at or before
  that moment — whether or not the deadline poller has fired case.overdue yet (it fires within a poll); or
- it is suspended (挂起: the clock stopped) after it had gone overdue (the mark case.overdue set, which a later
  deadline clears): stopping a late clock does not make the case less late.
Nothing else is overdue now: a case back at the command center (returned, rework, reopened before the next
dispatch), waiting for the check (resolved, explained) or finished runs no clock; a late finish is counted by
`closed_on_time`, not here.

The work screen's lists (GET /api/v1/cases?overdue=, the owner's filter), the statistics (`overdue_now` of
/api/v1/stats and /api/v1/stats/summary, the Monday list's late cases) read it in SQL through `overdue_sql`, the
same rule written once for PostgreSQL; the big screen's live figures and the urge read `is_overdue`.
tests/integration/test_overdue_now.py holds the two to the same answers.
"""
from __future__ import annotations

from datetime import datetime, timezone

from services.supervision.domain.clocks import RUNNING_STATES

SUSPENDED = "suspended"
# overdue_from's answer for a case that is overdue at any moment (suspended after going overdue).
ALREADY = datetime.min.replace(tzinfo=timezone.utc)


def overdue_from(state: str | None, due_at: datetime | None, went_overdue: bool) -> datetime | None:
    """From which moment a case in `state`, with its deadline in force `due_at` and the overdue mark set or not (the
    read model's `overdue_at`), is overdue as long as these facts hold: ALREADY, or None for never. What lets a
    screen count the overdue at any moment without asking every case again (services/supervision/live/open_index.py)."""
    if state in RUNNING_STATES:
        return due_at
    return ALREADY if state == SUSPENDED and went_overdue else None


def is_overdue(state: str | None, due_at: datetime | None, went_overdue: bool, at: datetime) -> bool:
    """Whether a case in `state`, with its deadline in force `due_at` and the overdue mark set or not (the read
    model's `overdue_at`), is overdue at `at`."""
    since = overdue_from(state, due_at, went_overdue)
    return since is not None and since <= at


def overdue_sql(at: str, alias: str = "") -> str:
    """`is_overdue` as a SQL boolean (never NULL) over the read model's `cases` columns (state, due_at, overdue_at);
    `at` is the SQL of the moment: a parameter such as `$4` holding the service's clock (shared/clock.py), never the
    database's now(), so that every screen judges one moment alike and a test can move it; `alias` the table's alias
    if any."""
    p = f"{alias}." if alias else ""
    running = ", ".join(f"'{s}'" for s in sorted(RUNNING_STATES))
    # Each NULL-able column is tested for NULL first, so the whole is true or false (a filter `= false` keeps the
    # rows without a state or a deadline), and no function wraps it (the planner may use the state index).
    return (f"(({p}state IS NOT NULL AND {p}state IN ({running}) AND {p}due_at IS NOT NULL AND {p}due_at <= {at})"
            f" OR ({p}state IS NOT NULL AND {p}state = '{SUSPENDED}' AND {p}overdue_at IS NOT NULL))")


def clears_overdue(new_due_at: datetime | None, at: datetime) -> bool:
    """Whether a new deadline in force (an approved extension, a resumption) given at `at` clears the overdue
    mark: only one still ahead does (a resumption with no time left keeps the case overdue). The deadline poller
    marks it again should the new deadline pass too."""
    return new_due_at is not None and new_due_at > at

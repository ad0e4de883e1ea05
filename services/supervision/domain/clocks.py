"""Handling clocks: when to remind, who is escalated to, and when a clock stops. Pure."""
from __future__ import annotations

from datetime import datetime
from typing import Iterable

from shared.worktime import WorkCalendar

# DESIGN.md "Time limits": at 75% of a limit, a reminder (催办) to the owner.
WARN_FRACTION = 0.75
# The handling clock runs while the owner holds the case; any other state stops it.
RUNNING_STATES = frozenset({"dispatched", "in_progress"})
# Finished by the owner: these stops count in the on-time share.
FINISHING_STATES = frozenset({"resolved", "explained", "closed"})


def warn_at(calendar: WorkCalendar, dispatched_at: datetime, value: float, unit: str, due_at: datetime) -> datetime:
    """When the 75% reminder is due, on the street's work calendar, never after the deadline itself."""
    moment = calendar.point_in_limit(dispatched_at, value, unit, WARN_FRACTION)
    # due_at comes from routing; if its calendar disagreed with ours the reminder still comes first.
    return min(moment, due_at)


def clock_runs_in(state: str | None) -> bool:
    """Whether the handling clock keeps running when a case is in this state."""
    return state in RUNNING_STATES


def escalation_level(owner: str, command_centers: Iterable[str]) -> str:
    """One level up from the owner: a community or a department → command_center; the command center → leadership."""
    return "leadership" if owner in set(command_centers) else "command_center"


# DESIGN.md "Time limits": a report is accepted and dispatched within 1 work hour (the dispatch
# stage), on the command center. Per-street configuration of stage limits is a later issue.
DISPATCH_STAGE_LIMIT = (1.0, "work_hours")
# The dispatch stage runs from the report until the case is dispatched, rejected or merged.
DISPATCH_STAGE_ENDS = frozenset({"dispatched", "rejected", "merged"})


def time_left(calendar: WorkCalendar, unit: str, at: datetime, deadline: datetime) -> float:
    """Seconds of the limit's own kind of time (work time, or wall time for unit 'hours') from `at` to `deadline`."""
    if unit == "hours":
        return max(0.0, (deadline - at).total_seconds())
    return calendar.work_seconds_between(at, deadline)


def later_by(calendar: WorkCalendar, unit: str, start: datetime, seconds: float) -> datetime:
    """`seconds` of the limit's kind of time after `start`."""
    if unit == "hours":
        return calendar.point_in_limit(start, seconds / 3600, "hours", 1.0)
    return calendar.add_work_seconds(start, seconds)


def resumed_deadlines(calendar: WorkCalendar, unit: str, resumed_at: datetime, due_left: float,
                      warn_left: float | None) -> tuple[datetime, datetime | None]:
    """After a suspension the clock restarts with the time that was left: (new due_at, new warn_at or None)."""
    due = later_by(calendar, unit, resumed_at, due_left)
    warn = later_by(calendar, unit, resumed_at, warn_left) if warn_left is not None else None
    return due, (min(warn, due) if warn is not None else None)


def extended_warn_at(calendar: WorkCalendar, unit: str, started_at: datetime, new_due: datetime) -> datetime:
    """The 75% reminder for a deadline moved by an approved extension, on the same kind of time."""
    span = time_left(calendar, unit, started_at, new_due)
    return min(later_by(calendar, unit, started_at, span * WARN_FRACTION), new_due)

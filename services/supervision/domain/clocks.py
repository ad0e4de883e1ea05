"""Clocks: when to remind, who is escalated to (and again, up the ladder), and when a clock stops. Pure.

The reminder fraction, the stage limits, the ladder and its interval are the street's configuration
(shared/street_config.py), passed in by StreetPolicy."""
from __future__ import annotations

from datetime import datetime
from typing import Iterable

from shared.contracts.cases import FINAL_STATES
from shared.worktime import WorkCalendar

# The handling clock runs while the owner holds the case; any other state stops it.
RUNNING_STATES = frozenset({"dispatched", "in_progress"})
# Finished by the owner: these stops count in the on-time share.
FINISHING_STATES = frozenset({"resolved", "explained", "closed"})


def warn_at(calendar: WorkCalendar, dispatched_at: datetime, value: float, unit: str, due_at: datetime,
            fraction: float = 0.75) -> datetime:
    """When the reminder (at `fraction` of the limit) is due, on the street's work calendar, never after the deadline."""
    moment = calendar.point_in_limit(dispatched_at, value, unit, fraction)
    # due_at comes from routing; if its calendar disagreed with ours the reminder still comes first.
    return min(moment, due_at)


def clock_runs_in(state: str | None) -> bool:
    """Whether the handling clock keeps running when a case is in this state."""
    return state in RUNNING_STATES


DEFAULT_LADDER = ("command_center", "leadership")


def escalation_level(owner: str, command_centers: Iterable[str], ladder: tuple[str, ...] = DEFAULT_LADDER) -> str:
    """The first level up from the owner: a community or a department → the ladder's first level (command_center);
    the command center → the level above command_center (leadership)."""
    if owner in set(command_centers) and "command_center" in ladder:
        above = ladder[ladder.index("command_center") + 1:]
        return above[0] if above else ladder[-1]
    return ladder[0]


def next_level(level: str | None, ladder: tuple[str, ...] = DEFAULT_LADDER) -> str | None:
    """The level after `level` on the ladder, or None at the top (each level is reached once)."""
    if level not in ladder:
        return None
    above = ladder[ladder.index(level) + 1:]
    return above[0] if above else None


# The dispatch stage runs from the report until the case is dispatched, rejected or merged, or closed at
# acceptance (自行处置: nothing is left to dispatch).
DISPATCH_STAGE_ENDS = frozenset({"dispatched"}) | FINAL_STATES
# The sign stage (签收) runs from dispatch while the case waits to be signed: signed, returned, suspended,
# re-dispatched (a new one starts) or any other move stops it.
SIGN_STAGE_STATES = frozenset({"dispatched"})
# The check stage (核查) runs from resolved/explained while the case waits for the command center's
# check: closed, rework, re-dispatch stop it.
CHECK_STAGE_STATES = frozenset({"resolved", "explained"})


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


def extended_warn_at(calendar: WorkCalendar, unit: str, started_at: datetime, new_due: datetime,
                     fraction: float = 0.75) -> datetime:
    """The reminder for a deadline moved by an approved extension, on the same kind of time."""
    span = time_left(calendar, unit, started_at, new_due)
    return min(later_by(calendar, unit, started_at, span * fraction), new_due)

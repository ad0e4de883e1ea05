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

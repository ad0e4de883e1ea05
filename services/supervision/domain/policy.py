"""The street's facts supervision decides with: its work calendar, category names, command center. Pure."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services.supervision.domain import clocks
from shared.worktime import WorkCalendar


@dataclass(frozen=True)
class StreetPolicy:
    """What one street's configuration says about clocks and notices."""

    calendar: WorkCalendar
    category_names: dict[str, str] = field(default_factory=dict)
    command_centers: frozenset[str] = frozenset()
    communities: dict[str, tuple[str, ...]] = field(default_factory=dict)  # community code → its unit grids
    sign_limit: tuple[float, str] = (2.0, "work_hours")  # 签收 within 2 work hours of dispatch (DESIGN "Time limits")

    def warn_at(self, dispatched_at: datetime, value: float, unit: str, due_at: datetime) -> datetime:
        """When the 75% reminder of a handling limit is due."""
        return clocks.warn_at(self.calendar, dispatched_at, value, unit, due_at)

    def category_label(self, code: str) -> str:
        """The category's Chinese name, or its code when the street does not know it."""
        return self.category_names.get(code, code)

    def escalation_level(self, owner: str) -> str:
        """Who supervises an overdue case of this owner."""
        return clocks.escalation_level(owner, self.command_centers)

    def unit_grids_of(self, community: str) -> tuple[str, ...]:
        """The unit grids of a community (empty if the street has no such community)."""
        return self.communities.get(community, ())

    @property
    def command_center(self) -> str:
        """The owner code of the street's command center (the first by code if it lists several)."""
        return min(self.command_centers) if self.command_centers else "command_center"

    def dispatch_stage_due(self, reported_at: datetime) -> tuple[datetime, datetime]:
        """(warn_at, due_at) of the dispatch stage: accepted and dispatched within 1 work hour of the report."""
        value, unit = clocks.DISPATCH_STAGE_LIMIT
        due = self.calendar.deadline(reported_at, value, unit)
        return self.warn_at(reported_at, value, unit, due), due

    def local(self, moment: datetime) -> datetime:
        """The same instant in the street's zone (for texts and responses)."""
        return moment.astimezone(self.calendar.zone)

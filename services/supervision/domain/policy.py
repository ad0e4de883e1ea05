"""The street's facts supervision decides with: its work calendar, time rules, category names, command center. Pure."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

from services.supervision.domain import clocks
from shared.street_config import Limit, StreetConfig
from shared.worktime import WorkCalendar


@dataclass(frozen=True)
class StreetPolicy:
    """What one street's configuration says about clocks and notices."""

    calendar: WorkCalendar
    category_names: dict[str, str] = field(default_factory=dict)
    command_centers: frozenset[str] = frozenset()
    communities: dict[str, tuple[str, ...]] = field(default_factory=dict)  # community code → its unit grids
    coordinator_grids: dict[str, tuple[str, ...]] = field(default_factory=dict)  # worker id → their unit grids
    # Work periods, reminder fraction, stage limits, ladder: the street's time rules (street_config.py).
    config: StreetConfig = StreetConfig()
    # The version of `config` in supervision's street_config table (0: not from the table).
    version: int = 0

    def with_config(self, config: StreetConfig, version: int) -> "StreetPolicy":
        """The same street under another configuration (its work periods replace the calendar's)."""
        calendar = dataclasses.replace(self.calendar, periods=config.periods)
        return dataclasses.replace(self, calendar=calendar, config=config, version=version)

    @property
    def warn_fraction(self) -> float:
        """催办 at this share of a limit (0.75)."""
        return self.config.warn_fraction

    @property
    def sign_limit(self) -> tuple[float, str]:
        """签收 within this of dispatch."""
        return self.config.sign.as_tuple()

    def stage_limit(self, stage: str) -> Limit:
        """The limit of the dispatch, sign or check stage."""
        return self.config.stage_limit(stage)

    def warn_at(self, dispatched_at: datetime, value: float, unit: str, due_at: datetime) -> datetime:
        """When the reminder of a limit is due (at the configured fraction)."""
        return clocks.warn_at(self.calendar, dispatched_at, value, unit, due_at, self.warn_fraction)

    def stage_due(self, stage: str, start: datetime) -> tuple[datetime, datetime]:
        """(warn_at, due_at) of a stage clock started at `start`."""
        limit = self.stage_limit(stage)
        due = self.calendar.deadline(start, limit.value, limit.unit)
        return self.warn_at(start, limit.value, limit.unit, due), due

    def category_label(self, code: str) -> str:
        """The category's Chinese name, or its code when the street does not know it."""
        return self.category_names.get(code, code)

    def escalation_level(self, owner: str, own_stage: bool = False) -> str:
        """Who supervises an overdue case of this owner first (own_stage: a stage of the command center's own)."""
        centers = self.command_centers | {owner} if own_stage else self.command_centers
        return clocks.escalation_level(owner, centers, self.config.ladder)

    def next_level(self, level: str | None) -> str | None:
        """The next level up the ladder while it stays overdue, or None at the top."""
        return clocks.next_level(level, self.config.ladder)

    def next_escalation_at(self, after: datetime) -> datetime:
        """When a case still overdue at `after` goes one more level up."""
        interval = self.config.escalation_interval
        return self.calendar.deadline(after, interval.value, interval.unit)

    def unit_grids_of(self, community: str) -> tuple[str, ...]:
        """The unit grids of a community (empty if the street has no such community)."""
        return self.communities.get(community, ())

    def unit_grids_of_worker(self, worker_id: str | None) -> tuple[str, ...]:
        """The unit grids a coordinator (网格员) answers for (empty for anyone the street's people do not list)."""
        return self.coordinator_grids.get(worker_id, ()) if worker_id else ()

    def community_of_grid(self, unit_grid: str | None) -> str | None:
        """The community a unit grid lies in (None if not a unit grid of this street)."""
        return next((c for c, grids in self.communities.items() if unit_grid in grids), None)

    @property
    def command_center(self) -> str:
        """The owner code of the street's command center (the first by code if it lists several)."""
        return min(self.command_centers) if self.command_centers else "command_center"

    def dispatch_stage_due(self, reported_at: datetime) -> tuple[datetime, datetime]:
        """(warn_at, due_at) of the dispatch stage: accepted and dispatched within 1 work hour of the report."""
        return self.stage_due("dispatch", reported_at)

    def local(self, moment: datetime) -> datetime:
        """The same instant in the street's zone (for texts and responses)."""
        return moment.astimezone(self.calendar.zone)

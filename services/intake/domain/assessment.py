"""受理: what intake does with a submitted report, decided without I/O.

A report is *rejected* (never becomes a case) when it cannot be one: outside the street, an
unknown category code. It becomes a *reported* case when something is missing that the command
center supplies (a category, a location the registry does not know), and an *accepted* case
(立案) when it has a category and a unit grid.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import AbstractSet, Protocol

from services.intake.domain.held import hold_reason
from shared.contracts.common import Location
from shared.contracts.reports import ReportSubmitted


class Locator(Protocol):
    """What the assessment needs to know about the street's geography."""

    def unit_grid_at(self, lon: float, lat: float) -> str | None: ...

    def find_address(self, text: str): ...  # -> an Address (address, lon, lat, unit_grid) or None


@dataclass(frozen=True)
class Rejected:
    """Not a case; the sender is told why."""

    reason: str


@dataclass(frozen=True)
class Assessed:
    """A case: where it is, and whether it can be accepted now or waits for the command center."""

    unit_grid: str | None
    location: Location | None
    address: str | None
    category: str | None
    hold_reason: str | None

    @property
    def accepted(self) -> bool:
        return self.hold_reason is None


def assess(report: ReportSubmitted, locator: Locator, categories: AbstractSet[str]) -> Rejected | Assessed:
    """Decide whether a report is rejected, held as reported, or accepted, and where it lies."""
    if report.category is not None and report.category not in categories:
        return Rejected(f"unknown category {report.category!r} (未知类别); known: {', '.join(sorted(categories))}")
    location, address, unit_grid = report.location, report.address, None
    if location is not None:
        unit_grid = locator.unit_grid_at(location.lon, location.lat)
        if unit_grid is None:
            return Rejected(
                f"location ({location.lon}, {location.lat}) is outside the street (不在本街道辖区内)"
            )
    else:
        entry = locator.find_address(address or "")
        if entry is not None:
            unit_grid, address = entry.unit_grid, entry.address
            location = Location(lon=entry.lon, lat=entry.lat)
    return Assessed(unit_grid, location, address, report.category, hold_reason(report.category, unit_grid))

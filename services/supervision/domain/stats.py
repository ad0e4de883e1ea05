"""The street's figures: what each one counts, the rates, periods in street time, names and CSV. Pure.

The definitions are written out once, with their formulas, in docs/STATISTICS.md; the SQL that counts
them is adapters/stats.py. This module holds what needs no database: the list of figures, the rates
and their formulas, the periods (days, ISO weeks, months, years in the street's zone), the work
calendar flattened for SQL, the names of keys, rankings and CSV.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from shared.worktime import WorkCalendar

BY = ("owner", "community", "unit_grid", "coordinator", "category")

# Counts, in the order they are answered (DESIGN.md's fields first, then ours). docs/STATISTICS.md says
# what each counts; adapters/stats.py counts them.
DESIGN_COUNTS = ("received", "accepted", "dispatched", "signed_on_time", "resolved", "closed", "closed_on_time",
                 "returned", "reworked", "extended", "reopened", "overdue_now", "surveyed", "satisfied")
EXTRA_COUNTS = ("coordinator_reports", "fixed_on_the_spot", "rejected", "dispatches", "explained", "went_overdue",
                "due", "due_closed_on_time", "surveyed_late", "urged")
COUNTS = DESIGN_COUNTS + EXTRA_COUNTS

# rate → (numerator, denominators summed). Rates are 0–1, 4 places, null when the denominator is 0.
RATES: dict[str, tuple[str, tuple[str, ...]]] = {
    "on_time_rate": ("due_closed_on_time", ("due",)),            # 按期办结率
    "satisfaction_rate": ("satisfied", ("surveyed",)),           # 满意率
    "sign_rate": ("signed_on_time", ("dispatched",)),            # 签收率 (按时签收)
    "close_rate": ("closed", ("accepted",)),                     # 结案率
    "rework_rate": ("reworked", ("resolved", "explained")),      # 返工率
    "return_rate": ("returned", ("dispatched",)),                # 回退率
    "extension_rate": ("extended", ("dispatched",)),             # 延期率
}
FIELDS = COUNTS + tuple(RATES)

SATISFIED_VERDICTS = ("satisfied", "basically_satisfied")
# DESIGN.md "Time limits": sign-off (签收) within 2 work hours of dispatch.
SIGN_LIMIT: tuple[float, str] = (2.0, "work_hours")
# Periods the figures may ask about (the work calendar is flattened over them for SQL).
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)


class PeriodError(ValueError):
    """A period that cannot be asked for (the message says why: for a 422)."""


def rate(numerator: int, denominator: int) -> float | None:
    """numerator / denominator rounded to 4 places; None when there is nothing to divide by."""
    return round(numerator / denominator, 4) if denominator else None


def with_rates(counts: Mapping[str, int]) -> dict[str, Any]:
    """Every count (0 when absent) and every rate of RATES computed from them."""
    row: dict[str, Any] = {name: int(counts.get(name) or 0) for name in COUNTS}
    for name, (numerator, denominators) in RATES.items():
        row[name] = rate(row[numerator], sum(row[d] for d in denominators))
    return row


# ---- periods (street time) --------------------------------------------------------------------

@dataclass(frozen=True)
class Period:
    """Days first..last (inclusive) in the street's zone; lo/hi are the instants [lo, hi)."""

    first: date
    last: date
    zone: ZoneInfo

    def __post_init__(self) -> None:
        if self.first > self.last:
            raise PeriodError(f"from ({self.first}) is after to ({self.last})")
        if self.first < FIRST_DAY or self.last > LAST_DAY:
            raise PeriodError(f"days from {FIRST_DAY} to {LAST_DAY} only")

    @property
    def lo(self) -> datetime:
        return datetime.combine(self.first, time(0), self.zone)

    @property
    def hi(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(0), self.zone)


_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def week_period(text: str, zone: ZoneInfo) -> Period:
    """An ISO week YYYY-Www: Monday to Sunday."""
    match = _WEEK.match(text)
    if not match:
        raise PeriodError(f"week {text!r}: expected YYYY-Www (an ISO week, e.g. 2026-W48)")
    if not FIRST_DAY.year <= int(match[1]) <= LAST_DAY.year:
        raise PeriodError(f"week {text!r}: years {FIRST_DAY.year}–{LAST_DAY.year} only")
    try:
        monday = date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError:
        raise PeriodError(f"week {text!r}: the year {match[1]} has no week {match[2]}") from None
    return Period(monday, monday + timedelta(days=6), zone)


def month_period(text: str, zone: ZoneInfo) -> Period:
    """A month YYYY-MM: its first to its last day."""
    match = _MONTH.match(text)
    if not match or not 1 <= int(match[2]) <= 12:
        raise PeriodError(f"month {text!r}: expected YYYY-MM (e.g. 2026-11)")
    if not FIRST_DAY.year <= int(match[1]) <= LAST_DAY.year:
        raise PeriodError(f"month {text!r}: years {FIRST_DAY.year}–{LAST_DAY.year} only")
    first = date(int(match[1]), int(match[2]), 1)
    following = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return Period(first, following - timedelta(days=1), zone)


def year_period(year: int, zone: ZoneInfo) -> Period:
    return Period(date(year, 1, 1), date(year, 12, 31), zone)


# ---- the work calendar, flattened for SQL -----------------------------------------------------

@dataclass(frozen=True)
class WorkDays:
    """Each day of a span with the work seconds before it (from the span's first day) and whether it is
    worked; with the work periods of a day as seconds after midnight. The work time at a moment t is
    before[day(t)] + (workday ? Σ clamp(seconds(t) − start, 0, end − start) : 0), so the work time between
    two moments is a difference of two such positions: what SQL computes with one join per moment."""

    days: tuple[date, ...]
    before: tuple[float, ...]
    workday: tuple[bool, ...]
    periods: tuple[tuple[float, float], ...]

    def position(self, moment: datetime, zone: ZoneInfo) -> float:
        """Work seconds from the span's start to `moment` (the same arithmetic as the SQL)."""
        local = moment.astimezone(zone)
        i = (local.date() - self.days[0]).days
        if not 0 <= i < len(self.days):
            raise ValueError(f"{moment} is outside the span {self.days[0]}–{self.days[-1]}")
        seconds = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        within = sum(max(0.0, min(seconds, end) - start) for start, end in self.periods) if self.workday[i] else 0.0
        return self.before[i] + within


def _seconds(moment: time) -> float:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def work_days(calendar: WorkCalendar, first: date, last: date) -> WorkDays:
    """The calendar's days first..last, flattened (see WorkDays)."""
    periods = tuple((_seconds(s), _seconds(e)) for s, e in calendar.periods)
    per_day = sum(e - s for s, e in periods)
    days, before, worked = [], [], []
    total, day = 0.0, first
    while day <= last:
        is_work = calendar.is_workday(day)
        days.append(day)
        before.append(total)
        worked.append(is_work)
        total += per_day if is_work else 0.0
        day += timedelta(days=1)
    return WorkDays(tuple(days), tuple(before), tuple(worked), periods)


def limit_seconds(calendar: WorkCalendar, value: float, unit: str) -> tuple[float, bool]:
    """A limit as (seconds, wall clock?): work_hours and work_days count work time, hours count wall time."""
    if unit == "hours":
        return value * 3600, True
    if unit == "work_hours":
        return value * 3600, False
    if unit == "work_days":
        return value * calendar.work_seconds_per_day, False
    raise ValueError(f"unknown limit unit {unit!r}")


def signed_in_time(calendar: WorkCalendar, dispatched_at: datetime, signed_at: datetime,
                   limit: tuple[float, str] = SIGN_LIMIT) -> bool:
    """签收 in time: signed within the sign-off limit of its dispatch (the rule the SQL applies)."""
    seconds, wall = limit_seconds(calendar, *limit)
    if wall:
        return (signed_at - dispatched_at).total_seconds() <= seconds
    return calendar.work_seconds_between(dispatched_at, signed_at) <= seconds


# ---- keys and their names ---------------------------------------------------------------------

def grid_communities(communities: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """unit grid → its community, the reverse of StreetPolicy.communities."""
    return {grid: community for community, grids in communities.items() for grid in grids}


NO_KEY = {"owner": "（未派遣）", "community": "（未定位）", "unit_grid": "（未定位）",
          "coordinator": "（非网格员上报）", "category": "（未分类）"}


@dataclass(frozen=True)
class StatsNames:
    """Chinese names of the keys figures are grouped by, and who coordinates which unit grid."""

    owners: dict[str, str] = field(default_factory=dict)          # departments and communities (owner codes)
    departments: frozenset[str] = frozenset()                     # owner codes that are not communities
    communities: dict[str, str] = field(default_factory=dict)
    unit_grids: dict[str, str] = field(default_factory=dict)
    categories: dict[str, str] = field(default_factory=dict)
    coordinators: dict[str, str] = field(default_factory=dict)    # worker id → name
    coordinator_grid: dict[str, str] = field(default_factory=dict)  # worker id → unit grid
    grid_coordinator: dict[str, str] = field(default_factory=dict)  # unit grid → worker id

    @classmethod
    def from_street(cls, street: Any) -> "StatsNames":
        """From shared.street.Street: departments, grids, categories and the coordinators (网格员 with a terminal)."""
        communities = {g.code: g.name for g in street.level("community")}
        units = {g.code: g.name for g in street.level("unit")}
        coordinators = [p for p in street.people if p.grid_code in units and (p.device_id or p.role == "网格员")]
        return cls(
            owners={**{d.code: d.name for d in street.departments.values()}, **communities},
            departments=frozenset(street.departments),
            communities=communities,
            unit_grids=units,
            categories={code: c.name for code, c in street.categories.items()},
            coordinators={p.person_id: p.name for p in coordinators},
            coordinator_grid={p.person_id: p.grid_code for p in coordinators},
            grid_coordinator={p.grid_code: p.person_id for p in coordinators},
        )

    def name(self, by: str, key: str | None) -> str:
        """The key's name for people (the key itself when the street does not know it)."""
        if key is None:
            return NO_KEY[by]
        table = {"owner": self.owners, "community": self.communities, "unit_grid": self.unit_grids,
                 "coordinator": self.coordinators, "category": self.categories}[by]
        return table.get(key, key)


def named_rows(by: str, counted: Iterable[tuple[str | None, Mapping[str, int]]], names: StatsNames) -> list[dict]:
    """Rows {key, name, counts…, rates…} sorted by key (the row of no key last)."""
    rows = [{"key": key, "name": names.name(by, key), **with_rates(counts)} for key, counts in counted]
    return sorted(rows, key=lambda r: (r["key"] is None, r["key"] or ""))


def ranked(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Ranked by on-time rate, then satisfaction rate (higher first, null last), then key; equal rates share a
    rank (1, 2, 2, 4)."""
    def order(row: Mapping[str, Any]) -> tuple:
        on_time, satisfied = row.get("on_time_rate"), row.get("satisfaction_rate")
        return (on_time is None, -(on_time or 0.0), satisfied is None, -(satisfied or 0.0))

    result: list[dict[str, Any]] = []
    for i, row in enumerate(sorted(rows, key=lambda r: (*order(r), str(r.get("key"))))):
        tied = result and order(result[-1]) == order(row)
        result.append({"rank": result[-1]["rank"] if tied else i + 1, **row})
    return result


# ---- CSV ---------------------------------------------------------------------------------------

BOM = "\ufeff"


def to_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """UTF-8 with a BOM (so that Excel reads the Chinese right), a header row, CRLF lines; None → empty."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else (" ".join(v) if isinstance(v, (list, tuple)) else v) for v in row])
    return (BOM + out.getvalue()).encode("utf-8")


def stats_csv(rows: Sequence[Mapping[str, Any]], total: Mapping[str, Any]) -> bytes:
    """The figures as CSV: one line per row, then the street's total (key 合计)."""
    header = ("key", "name", *FIELDS)
    lines = [[row.get(h) for h in header] for row in rows]
    lines.append(["合计", "全街道", *(total.get(f) for f in FIELDS)])
    return to_csv(header, lines)

"""The street's work calendar: which days are worked, the work periods, and time limits on it.

Statutory holidays and adjusted working weekends (调休) come from the maintained `chinese_calendar`
package; a per-street override table (date → worked or not) covers what it does not know yet,
such as next year's schedule before the package has it. Pure: no I/O.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Mapping
from zoneinfo import ZoneInfo

import chinese_calendar

log = logging.getLogger(__name__)

DEFAULT_PERIODS: tuple[tuple[time, time], ...] = ((time(8, 30), time(12, 0)), (time(13, 30), time(17, 30)))
# Guard for a calendar with no work days at all (a misconfigured override table).
MAX_DAYS_AHEAD = 3660


class CalendarError(ValueError):
    """A limit that cannot be placed on this calendar."""


@dataclass(frozen=True)
class WorkCalendar:
    """Work days and periods of one street, in its time zone."""

    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    periods: tuple[tuple[time, time], ...] = DEFAULT_PERIODS
    overrides: Mapping[date, bool] = field(default_factory=dict)

    @property
    def work_seconds_per_day(self) -> float:
        """Length of one full work day (7.5 h by default): what one 'work day' of a limit means."""
        return sum(_seconds(start, end) for start, end in self.periods)

    def is_workday(self, day: date) -> bool:
        """Whether the street works that day: the override table first, then the national calendar,
        and for years the national calendar does not know yet, Monday to Friday."""
        if day in self.overrides:
            return self.overrides[day]
        national = national_workday(day)
        if national is None:
            _warn_unknown_year(day.year)
            return day.weekday() < 5
        return national

    def knows(self, year: int) -> bool:
        """Whether holidays and 调休 of `year` are known: the override table has entries for it, or the
        national calendar package covers it. An unknown year is counted Monday to Friday (assumed)."""
        return any(day.year == year for day in self.overrides) or knows(year)

    def assumed_between(self, start: datetime, end: datetime) -> bool:
        """Whether a span from start to end crosses a year this calendar does not know (a deadline there is assumed)."""
        first, last = sorted((start.astimezone(self.zone).year, end.astimezone(self.zone).year))
        return not all(self.knows(year) for year in range(first, last + 1))

    def deadline(self, start: datetime, value: float, unit: str) -> datetime:
        """When a limit of `value` `unit` (work_hours, work_days, hours) that starts at `start` runs out."""
        return self.point_in_limit(start, value, unit, 1.0)

    def point_in_limit(self, start: datetime, value: float, unit: str, fraction: float) -> datetime:
        """The moment a given fraction of a limit has passed (0.75 → when to send the reminder)."""
        if start.tzinfo is None:
            raise CalendarError("start has no offset")
        if unit == "hours":
            return (start + timedelta(hours=value * fraction)).astimezone(self.zone)
        if unit == "work_hours":
            return self.add_work_seconds(start, value * 3600 * fraction)
        if unit == "work_days":
            return self.add_work_seconds(start, value * self.work_seconds_per_day * fraction)
        raise CalendarError(f"unknown limit unit {unit!r}")

    def add_work_seconds(self, start: datetime, seconds: float) -> datetime:
        """The moment `seconds` of work time after `start` (time outside work periods does not count)."""
        cursor = start.astimezone(self.zone)
        remaining = seconds
        day = cursor.date()
        for _ in range(MAX_DAYS_AHEAD):
            if self.is_workday(day):
                for p_start, p_end in self.periods:
                    begin = max(cursor, datetime.combine(day, p_start, self.zone))
                    end = datetime.combine(day, p_end, self.zone)
                    if begin >= end:
                        continue
                    available = (end - begin).total_seconds()
                    if remaining <= available:
                        # A limit that ends exactly at a period's end stays there (17:30, not next morning).
                        return begin + timedelta(seconds=remaining)
                    remaining -= available
            day += timedelta(days=1)
        raise CalendarError(f"no work time within {MAX_DAYS_AHEAD} days of {start.isoformat()}")

    def work_seconds_between(self, start: datetime, end: datetime) -> float:
        """Work time between two moments (0 when end is not after start)."""
        if end <= start:
            return 0.0
        start, end = start.astimezone(self.zone), end.astimezone(self.zone)
        total = 0.0
        day = start.date()
        while day <= end.date():
            if self.is_workday(day):
                for p_start, p_end in self.periods:
                    begin = max(start, datetime.combine(day, p_start, self.zone))
                    finish = min(end, datetime.combine(day, p_end, self.zone))
                    if finish > begin:
                        total += (finish - begin).total_seconds()
            day += timedelta(days=1)
        return total


def knows(year: int) -> bool:
    """Whether the national calendar package (chinesecalendar) has the holidays and 调休 of `year`."""
    return national_workday(date(year, 6, 1)) is not None


@functools.lru_cache(maxsize=8192)
def national_workday(day: date) -> bool | None:
    """Whether the national calendar works on `day`; None for a year it does not know. Remembered: the package
    scans its whole holiday table to check the year on every call, and every deadline walks day by day (it was a
    quarter of supervision's CPU under a burst)."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return None


def _seconds(start: time, end: time) -> float:
    return (datetime.combine(date.min, end) - datetime.combine(date.min, start)).total_seconds()


_warned_years: set[int] = set()


def _warn_unknown_year(year: int) -> None:
    if year not in _warned_years:
        _warned_years.add(year)
        log.warning(
            "the holiday calendar does not know %d yet: counting Monday–Friday as work days; "
            "add that year's holidays and 调休 days to the street's override table",
            year,
        )


def main(argv: list[str] | None = None) -> int:
    """`python -m shared.worktime check --street DIR [--config-dir DIR]`: warn when next year is unknown.

    Prints one line per year (this one and the next) that neither the chinesecalendar package nor the
    street's override table (`<name>-calendar.csv`, in the street folder or its configuration folder)
    knows yet; deadlines there are counted Monday to Friday and flagged `calendar_assumed`. Exits 0
    either way: it is a warning for ./dev up, not a gate.
    """
    import argparse
    import sys

    from shared.street import read_calendar_overrides

    parser = argparse.ArgumentParser(prog="python -m shared.worktime")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="warn about years the holiday calendar does not know yet")
    check.add_argument("--street", required=True, help="the street folder (WANGGE_STREET_DIR)")
    check.add_argument("--config-dir", default=None,
                       help="the street's configuration folder (default: <repo>/streets/<name>)")
    check.add_argument("--year", type=int, default=None, help="this year (default: today's, Asia/Shanghai)")
    args = parser.parse_args(argv)
    overrides: dict[date, bool] = {}
    try:
        from shared.street import street_config_folder
        for folder in (street_config_folder(Path(args.street), args.config_dir), Path(args.street)):
            overrides.update(read_calendar_overrides(folder))
    except Exception as exc:  # noqa: BLE001 — a warning tool: say what is wrong, never fail ./dev
        print(f"warning: could not read the street's calendar override: {exc}", file=sys.stderr)
    calendar = WorkCalendar(overrides=overrides)
    this_year = args.year or datetime.now(calendar.zone).year
    unknown = [year for year in (this_year, this_year + 1) if not calendar.knows(year)]
    for year in unknown:
        print(f"warning: the holiday calendar does not know {year}: deadlines in {year} are counted "
              f"Monday–Friday and flagged calendar_assumed; add {year}'s holidays and 调休 days to the "
              f"street's <name>-calendar.csv once the State Council publishes them", file=sys.stderr)
    if not unknown:
        print(f"calendar: {this_year} and {this_year + 1} are known")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The work calendar: periods, holidays, 调休, limits in the three units."""
from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from shared.worktime import WorkCalendar

pytestmark = pytest.mark.unit
Z = ZoneInfo("Asia/Shanghai")
CAL = WorkCalendar()


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=Z)


def test_work_hours_skip_lunch_evening_and_weekend():
    # Friday 16:00 + 4 work hours: 1.5 h on Friday, 2.5 h on Monday morning.
    assert CAL.deadline(at(2026, 11, 27, 16, 0), 4, "work_hours") == at(2026, 11, 30, 11, 0)
    # 11:00 + 2 work hours: one hour before lunch, one after 13:30.
    assert CAL.deadline(at(2026, 11, 26, 11, 0), 2, "work_hours") == at(2026, 11, 26, 14, 30)


def test_a_report_at_night_starts_counting_next_work_morning():
    assert CAL.deadline(at(2026, 11, 26, 22, 0), 1, "work_hours") == at(2026, 11, 27, 9, 30)


def test_work_days_count_whole_working_days_on_the_national_calendar():
    # National Day 2026: 1–7 October off; a one-work-day limit from 30 September 10:00 ends on 8 October.
    assert CAL.deadline(at(2026, 9, 30, 10, 0), 1, "work_days") == at(2026, 10, 8, 10, 0)
    assert CAL.deadline(at(2026, 11, 27, 16, 0), 3, "work_days") == at(2026, 12, 2, 16, 0)


def test_calendar_hours_run_day_and_night():
    assert CAL.deadline(at(2026, 11, 27, 23, 0), 2, "hours") == at(2026, 11, 28, 1, 0)


def test_the_reminder_falls_at_three_quarters_of_the_limit():
    # 9:00 + 3 of 4 work hours = 12:00, the end of the morning period (not 13:30).
    assert CAL.point_in_limit(at(2026, 11, 27, 9, 0), 4, "work_hours", 0.75) == at(2026, 11, 27, 12, 0)


def test_overrides_win_over_the_national_calendar_and_cover_unknown_years():
    assert CAL.is_workday(date(2027, 1, 4)) is True  # unknown year: Monday–Friday
    cal = WorkCalendar(overrides={date(2027, 1, 1): False, date(2027, 1, 2): True})
    assert cal.is_workday(date(2027, 1, 1)) is False and cal.is_workday(date(2027, 1, 2)) is True


def test_work_seconds_between_is_the_inverse_of_adding_them():
    start = at(2026, 11, 27, 10, 15)
    end = CAL.add_work_seconds(start, 20 * 3600)
    assert CAL.work_seconds_between(start, end) == pytest.approx(20 * 3600)


def test_national_day_is_skipped_and_the_adjusted_saturday_is_worked():
    # Wed 2026-09-30 16:30 + 4 work hours: 1 h that day, then National Day (10-01 to 10-07), then
    # Thursday 10-08 from 08:30: 3 h more → 11:30.
    assert CAL.deadline(at(2026, 9, 30, 16, 30), 4, "work_hours") == at(2026, 10, 8, 11, 30)
    # Friday 10-09 17:00 + 2 work hours: Saturday 10-10 is an adjusted working day (调休): 10:00 that day.
    assert CAL.deadline(at(2026, 10, 9, 17, 0), 2, "work_hours") == at(2026, 10, 10, 10, 0)
    # And 1 work day from Wednesday 09-30 09:00 ends on 10-08 at 09:00 (7.5 work hours later).
    assert CAL.deadline(at(2026, 9, 30, 9, 0), 1, "work_days") == at(2026, 10, 8, 9, 0)

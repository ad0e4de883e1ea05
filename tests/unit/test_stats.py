"""The figures' pure parts: rates, periods, the flattened work calendar (checked against WorkCalendar), names,
ranking and CSV."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from services.supervision.domain import stats
from shared.worktime import WorkCalendar

ZONE = ZoneInfo("Asia/Shanghai")
CST = timezone(timedelta(hours=8))
CALENDAR = WorkCalendar(zone=ZONE)


def test_rates_are_rounded_to_four_places_and_null_without_a_denominator():
    assert stats.rate(2, 3) == 0.6667 and stats.rate(0, 5) == 0.0 and stats.rate(3, 0) is None
    row = stats.with_rates({"due": 8, "due_closed_on_time": 6, "surveyed": 5, "satisfied": 3, "dispatched": 5,
                            "signed_on_time": 3, "accepted": 5, "closed": 6, "resolved": 5, "explained": 1,
                            "reworked": 1, "returned": 1, "extended": 1})
    assert (row["on_time_rate"], row["satisfaction_rate"], row["sign_rate"], row["close_rate"]) == (0.75, 0.6, 0.6, 1.2)
    assert (row["rework_rate"], row["return_rate"], row["extension_rate"]) == (0.1667, 0.2, 0.2)  # 1 / (5 + 1)
    empty = stats.with_rates({})
    assert all(empty[c] == 0 for c in stats.COUNTS) and all(empty[r] is None for r in stats.RATES)
    assert set(stats.DESIGN_COUNTS) <= set(stats.FIELDS) and {"on_time_rate", "satisfaction_rate"} <= set(stats.FIELDS)


def test_periods_are_whole_days_in_street_time():
    period = stats.Period(date(2026, 11, 25), date(2026, 11, 26), ZONE)
    assert period.lo == datetime(2026, 11, 25, tzinfo=CST) and period.hi == datetime(2026, 11, 27, tzinfo=CST)
    week = stats.week_period("2026-W48", ZONE)
    assert (week.first, week.last) == (date(2026, 11, 23), date(2026, 11, 29))
    month = stats.month_period("2024-02", ZONE)
    assert (month.first, month.last) == (date(2024, 2, 1), date(2024, 2, 29))
    assert stats.month_period("2026-12", ZONE).last == date(2026, 12, 31)
    assert stats.year_period(2026, ZONE).hi == datetime(2027, 1, 1, tzinfo=CST)
    for bad in (lambda: stats.Period(date(2026, 11, 26), date(2026, 11, 25), ZONE),
                lambda: stats.Period(date(1999, 12, 31), date(2000, 1, 1), ZONE),
                lambda: stats.week_period("2026-W54", ZONE), lambda: stats.week_period("2026-48", ZONE),
                lambda: stats.week_period("0000-W01", ZONE), lambda: stats.month_period("2026-13", ZONE),
                lambda: stats.month_period("0000-01", ZONE)):
        with pytest.raises(stats.PeriodError):
            bad()


@pytest.mark.parametrize("start, end", [
    ("2026-11-25T09:20", "2026-11-25T10:00"),   # within a morning
    ("2026-11-25T10:00", "2026-11-25T14:00"),   # across lunch: 2.5 work hours
    ("2026-11-25T16:05", "2026-11-26T09:00"),   # across the night
    ("2026-11-27T17:00", "2026-11-30T09:00"),   # across a weekend
    ("2026-09-30T16:00", "2026-10-09T09:00"),   # across the National Day holiday
    ("2026-11-28T10:00", "2026-11-28T11:00"),   # on a Saturday: no work time
    ("2026-11-25T07:00", "2026-11-25T19:00"),   # from before to after the work day
])
def test_the_flattened_calendar_counts_work_time_as_the_work_calendar_does(start, end):
    t0, t1 = (datetime.fromisoformat(x).replace(tzinfo=CST) for x in (start, end))
    days = stats.work_days(CALENDAR, t0.date(), t1.date())
    assert days.position(t1, ZONE) - days.position(t0, ZONE) == pytest.approx(CALENDAR.work_seconds_between(t0, t1))


def test_signing_in_time_is_within_two_work_hours_of_the_dispatch():
    dispatched = datetime(2026, 11, 25, 10, 0, tzinfo=CST)
    # 10:00–12:00 is 2 work hours: signed at 13:30 (3.5 wall hours) is in time, at 13:31 not.
    assert stats.signed_in_time(CALENDAR, dispatched, datetime(2026, 11, 25, 13, 30, tzinfo=CST))
    assert not stats.signed_in_time(CALENDAR, dispatched, datetime(2026, 11, 25, 13, 31, tzinfo=CST))
    friday = datetime(2026, 11, 27, 17, 0, tzinfo=CST)  # 30 min left on Friday, 90 min on Monday morning
    assert stats.signed_in_time(CALENDAR, friday, datetime(2026, 11, 30, 10, 0, tzinfo=CST))
    assert stats.limit_seconds(CALENDAR, 1, "work_days") == (7.5 * 3600, False)
    assert stats.limit_seconds(CALENDAR, 2, "hours") == (7200, True)


class _Grid:
    def __init__(self, code, name):
        self.code, self.name = code, name


class _Street:
    """The parts of shared.street.Street that StatsNames reads."""

    def __init__(self):
        from types import SimpleNamespace as NS
        self.departments = {"huanwei": NS(code="huanwei", name="环卫所")}
        self.categories = {"CM04": NS(name="垃圾箱损坏/暴露垃圾")}
        self.people = [NS(person_id="W001", name="网格员001", role="网格员", grid_code="u1", device_id="SZT-0001"),
                       NS(person_id="S001", name="社区网格长001", role="社区网格长", grid_code="c1", device_id=None)]
        self._levels = {"community": [_Grid("c1", "龙头社区")], "unit": [_Grid("u1", "一号单元网格")]}

    def level(self, level):
        return self._levels.get(level, [])


def test_names_of_keys_come_from_the_street():
    names = stats.StatsNames.from_street(_Street())
    assert names.name("owner", "huanwei") == "环卫所" and names.name("owner", "c1") == "龙头社区"
    assert names.name("coordinator", "W001") == "网格员001" and "S001" not in names.coordinators
    assert names.grid_coordinator == {"u1": "W001"} and names.name("category", "CM04") == "垃圾箱损坏/暴露垃圾"
    assert names.name("unit_grid", "u9") == "u9" and names.name("community", None) == "（未定位）"
    assert stats.grid_communities({"c1": ("u1", "u2"), "c2": ("u3",)}) == {"u1": "c1", "u2": "c1", "u3": "c2"}
    rows = stats.named_rows("owner", [(None, {"received": 1}), ("huanwei", {"received": 2})], names)
    assert [(r["key"], r["name"], r["received"]) for r in rows] == [("huanwei", "环卫所", 2), (None, "（未派遣）", 1)]


def test_ranking_is_by_on_time_rate_then_satisfaction_with_ties_sharing_a_rank():
    rows = [{"key": "a", "on_time_rate": 0.8, "satisfaction_rate": 0.5},
            {"key": "b", "on_time_rate": 0.9, "satisfaction_rate": None},
            {"key": "c", "on_time_rate": 0.8, "satisfaction_rate": 0.7},
            {"key": "d", "on_time_rate": None, "satisfaction_rate": 1.0},
            {"key": "e", "on_time_rate": 0.8, "satisfaction_rate": 0.5}]
    assert [(r["rank"], r["key"]) for r in stats.ranked(rows)] == [(1, "b"), (2, "c"), (3, "a"), (3, "e"), (5, "d")]


def test_csv_has_a_bom_a_header_and_the_total():
    row = {"key": "huanwei", "name": "环卫所", **stats.with_rates({"received": 2})}
    text = stats.stats_csv([row], stats.with_rates({"received": 2})).decode("utf-8")
    assert text.startswith("\ufeffkey,name,received,")
    lines = text.lstrip("\ufeff").splitlines()
    assert lines[1].startswith("huanwei,环卫所,2,") and lines[2].startswith("合计,全街道,2,")
    assert lines[1].endswith(",,,,,,,")  # rates without a denominator are empty cells
    assert stats.to_csv(["cases"], [[["a", "b"]]]).decode("utf-8-sig").splitlines() == ["cases", "a b"]

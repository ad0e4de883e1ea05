"""The street's duty roster (带班领导值班表): who an escalation to the leadership reaches, by street day."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from shared.street import StreetDataError, read_duty_roster

DEMO = Path(__file__).resolve().parents[2] / "streets" / "wenhualu"


def test_the_demo_street_has_a_leader_on_every_day_of_the_week():
    roster = read_duty_roster(DEMO)
    for offset in range(7):
        leader = roster.on_duty(date(2026, 12, 7 + offset))
        assert leader is not None and leader.name and leader.phone.isdigit()


def test_a_dated_row_comes_ahead_of_the_weekly_rota(tmp_path):
    (tmp_path / "x-duty.csv").write_text("# 值班表\nday,name,phone\nmon,甲,13900000001\n2026-12-07,乙,13900000002\n",
                                         encoding="utf-8")
    roster = read_duty_roster(tmp_path)
    assert roster.on_duty(date(2026, 12, 7)).name == "乙"    # a Monday with its own row
    assert roster.on_duty(date(2026, 12, 14)).name == "甲"   # the next Monday: the rota
    assert roster.on_duty(date(2026, 12, 8)) is None         # a Tuesday nobody covers


def test_no_roster_file_is_an_empty_roster_and_a_bad_row_names_its_line(tmp_path):
    assert read_duty_roster(tmp_path).on_duty(date(2026, 12, 7)) is None
    (tmp_path / "x-duty.csv").write_text("day,name,phone\nmon,甲,13900000001\nsomeday,乙,13900000002\n", encoding="utf-8")
    with pytest.raises(StreetDataError, match="line 3"):
        read_duty_roster(tmp_path)
    (tmp_path / "x-duty.csv").write_text("day,name,phone\nmon,甲,\n", encoding="utf-8")
    with pytest.raises(StreetDataError, match="needs a name and a phone"):
        read_duty_roster(tmp_path)

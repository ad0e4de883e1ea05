"""Which windows the live figures read (services/supervision/live/figures.py): today's hours and the last hour's
spikes, whatever older windows the tables still keep."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.supervision.live import figures as live

pytestmark = pytest.mark.unit

ZONE = ZoneInfo("Asia/Shanghai")
NAMES = live.Names(unit_grids={"G1": "一号网格"}, communities={"C1": "一社区"}, community_of={"G1": "C1"},
                   categories={"CM04": "垃圾箱"})


def _start(at: datetime) -> float:
    return live.window_start(at)


def test_by_day_the_first_window_read_is_midnight_and_just_after_midnight_the_last_hour_of_yesterday():
    at = datetime(2026, 12, 8, 10, 30, tzinfo=ZONE)
    assert live.first_window_shown(at, ZONE) == datetime(2026, 12, 8, 0, 0, tzinfo=ZONE).timestamp()
    just_after = datetime(2026, 12, 8, 0, 20, tzinfo=ZONE)
    assert live.first_window_shown(just_after, ZONE) == datetime(2026, 12, 7, 23, 0, tzinfo=ZONE).timestamp()


def test_the_figures_count_today_s_hours_and_spikes_of_the_last_hour_and_nothing_older():
    at = datetime(2026, 12, 8, 10, 30, tzinfo=ZONE)
    hourly = [("G1", _start(at), 2), ("G1", _start(at - timedelta(days=1)), 6)]
    spikes = [("C1|CM04", _start(at - timedelta(hours=1)), 6), ("C1|CM04", _start(at - timedelta(hours=2)), 6)]
    shown = live.figures({}, hourly, spikes, names=NAMES, at=at, zone=ZONE, spike_threshold=5)
    assert shown["today"]["street"][10] == 2 and sum(shown["today"]["street"]) == 2
    assert shown["cases_last_hour"] == {"G1": 2}
    assert [(s["window_start"], s["count"]) for s in shown["spikes"]] == [("2026-12-08T09:00:00+08:00", 6)]


def test_windows_given_with_their_case_ids_are_counted_each_case_once():
    assert live.counted([("G1", 0.0, ["a", "b", "a"]), ("G2", 3600.0, [])]) == [("G1", 0.0, 2), ("G2", 3600.0, 0)]

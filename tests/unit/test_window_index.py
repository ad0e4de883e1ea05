"""The live figures' windows kept as rows are written (services/supervision/live/window_index.py)."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from faust.windows import TumblingWindow

from services.supervision.live.window_index import WindowIndex

pytestmark = pytest.mark.unit

HOUR = 3600.0


class Table:
    """A windowed table as faust keeps it: rows keyed (case id, (window start, end)), tumbling windows."""

    def __init__(self):
        self.table = SimpleNamespace(data={}, window=TumblingWindow(HOUR))

    def set(self, case_id: str, row: dict, moment: float) -> None:
        for window in self.table.window.ranges(moment):
            self.table.data[(case_id, window)] = row


def grid(row):
    return row.get("unit_grid")


def as_sets(windows):
    return {(key, start): set(ids) for key, start, ids in windows}


def scanned(table: Table):
    return as_sets(WindowIndex(table, grid, 3 * 86400).windows())


def test_rows_written_after_the_first_read_are_in_the_windows_as_a_fresh_read_of_the_table_has_them():
    table, now = Table(), time.time()
    index = WindowIndex(table, grid, 3 * 86400)
    table.set("c1", {"unit_grid": "G1"}, now)
    assert as_sets(index.windows()) == scanned(table)
    for case_id, grid_code, moment in (("c2", "G1", now), ("c3", "G2", now - HOUR), ("c1", "G1", now)):
        table.set(case_id, {"unit_grid": grid_code}, moment)
        index.written(case_id, {"unit_grid": grid_code}, moment)
    assert as_sets(index.windows()) == scanned(table)
    start = TumblingWindow(HOUR).ranges(now)[0][0]
    assert as_sets(index.windows())[("G1", start)] == {"c1", "c2"}  # a case written twice counts once


def test_a_row_without_a_key_is_in_no_window():
    table, now = Table(), time.time()
    index = WindowIndex(table, grid, 3 * 86400)
    assert index.windows() == []
    table.set("c1", {"category": "CM04"}, now)
    index.written("c1", {"category": "CM04"}, now)
    assert index.windows() == [] == list(scanned(table))


def test_after_the_table_changed_wholesale_or_a_row_it_cannot_place_the_windows_are_read_from_the_table_again():
    table, now = Table(), time.time()
    index = WindowIndex(table, grid, 3 * 86400)
    index.windows()
    table.set("c1", {"unit_grid": "G1"}, now)  # a recovery: rows arrive without written()
    index.forget()
    assert as_sets(index.windows()) == scanned(table)
    table.set("c2", {"unit_grid": "G2"}, now)
    index.written("c2", {"unit_grid": "G2"}, None)
    assert as_sets(index.windows()) == scanned(table)


def test_windows_older_than_kept_are_dropped_and_a_share_reads_the_table():
    table, now = Table(), time.time()
    index = WindowIndex(table, grid, 2 * HOUR)
    index.windows()
    for case_id, moment in (("old", now - 5 * HOUR), ("new", now)):
        table.set(case_id, {"unit_grid": "G1"}, moment)
        index.written(case_id, {"unit_grid": "G1"}, moment)
    assert {ids for _, _, [ids] in index.windows()} == {"new"}
    # An instance's share is read from the table's rows the filter keeps, whatever the groups hold.
    assert {i for _, _, ids in index.windows(keep=lambda key: key[0] == "old") for i in ids} == {"old"}


def test_counted_gives_the_cases_of_each_window_from_since_on_as_the_windows_have_them():
    table, now = Table(), time.time()
    index = WindowIndex(table, grid, 3 * 86400)
    index.windows()
    for case_id, grid_code, moment in (("yesterday", "G1", now - 24 * HOUR), ("last hour", "G1", now - HOUR),
                                       ("now", "G1", now), ("now too", "G1", now), ("elsewhere", "G2", now)):
        table.set(case_id, {"unit_grid": grid_code}, moment)
        index.written(case_id, {"unit_grid": grid_code}, moment)
    index.written("now", {"unit_grid": "G1"}, now)  # a case written twice counts once
    start = TumblingWindow(HOUR).ranges(now)[0][0]
    assert sorted(index.counted(since=start - HOUR)) == [("G1", start - HOUR, 1), ("G1", start, 2), ("G2", start, 1)]
    assert sorted(index.counted()) == sorted((key, s, len(ids)) for (key, s), ids in scanned(table).items())

"""The coordinator's pure parts: who coordinates which grids, the check's grid rule, 自行处置 in the contract and
the fold, the Chinese labels and outcomes of their reports, and their list's cursor."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from services.supervision.domain import coordinator, report_cursor
from services.supervision.domain.decisions import CaseSnapshot, Refused, decide_check
from services.supervision.domain.read_model import case_columns
from services.supervision.domain.states import next_state
from shared.contracts import Envelope, InvalidMessage, parse_event
from shared.contracts import cases as c
from shared.settings import Settings
from shared.street import load_street

pytestmark = pytest.mark.unit

AT = datetime(2026, 12, 6, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
REPORT = {"source": "terminal", "external_id": "SZT-0001-1", "category": "CM04", "description": "垃圾箱倾倒",
          "location": {"lon": 117.578802, "lat": 34.874615}, "address": None, "reporter": None,
          "coordinator": {"worker_id": "W001", "device_id": "SZT-0001"}, "media": [],
          "observed_at": "2026-12-06T09:00:00+08:00"}


def test_the_streets_people_say_which_unit_grids_each_coordinator_walks():
    street = load_street(Settings().street_dir)
    grids = street.coordinator_grids()
    assert grids["W001"] == ("3704020010010101",) and grids["W004"] == ("3704020010010201",)
    assert len(grids) == 122 and all(street.grids[g].level == "unit" for found in grids.values() for g in found)
    assert "S001" not in grids and "F001" not in grids  # community and foundation grid heads are not coordinators


def test_a_coordinator_checks_only_the_cases_of_their_grids():
    case = CaseSnapshot(case_id="c1", case_no="20261206-0001", state="resolved", owner="huanwei",
                        unit_grid="3704020010010101")
    assert decide_check(case, case.case_no, True, ("3704020010010101",)).event_type == "case.closed"
    assert decide_check(case, case.case_no, True, None).event_type == "case.closed"  # the command center: any
    refused = decide_check(case, case.case_no, False, ("3704020010010201",))
    assert isinstance(refused, Refused) and refused.status == 403 and "网格" in refused.reason
    # A case of no grid at all is nobody's to check on site but the command center's.
    nowhere = CaseSnapshot(case_id="c2", case_no="20261206-0002", state="resolved", owner="huanwei")
    assert isinstance(decide_check(nowhere, nowhere.case_no, True, ("3704020010010101",)), Refused)


def test_fixed_on_the_spot_is_a_terminals_report_only():
    spot = {"resolved_on_the_spot": {"result": "已扶正", "media": ["https://photos.example.org/a.jpg"]}}
    envelope = Envelope.new("report.submitted", 1, {**REPORT, **spot}, source="terminal")
    assert parse_event(envelope).resolved_on_the_spot.result == "已扶正"
    for change, reason in (({"source": "hotline", "coordinator": None}, "自行处置"),
                           ({"resolved_on_the_spot": {"result": " "}}, "result"),
                           ({"resolved_on_the_spot": {"result": "x", "media": ["not a url"]}}, "media"),
                           ({"resolved_on_the_spot": {"result": "x", "by": "W002"}}, "by")):
        with pytest.raises(InvalidMessage) as err:
            parse_event(Envelope.new("report.submitted", 1, {**REPORT, **spot, **change}, source="x"))
        assert reason in err.value.reason
    # Readers of the old form are untouched: the field is optional.
    assert parse_event(Envelope.new("report.submitted", 1, REPORT, source="terminal")).resolved_on_the_spot is None


def test_an_accepted_case_fixed_on_the_spot_closes_and_says_so_in_the_read_model():
    assert next_state("accepted", "case.closed").effect == "moved"
    closed = c.CaseClosed(case_no="n", owner="command_center", outcome="resolved", result="已扶正", by="coordinator:W001",
                          closed_at=AT, on_time=True, on_the_spot=True, media=["https://p.example.org/a.jpg"])
    columns = case_columns(closed, closed.TYPE, AT)
    assert columns["on_the_spot"] is True and columns["result"] == "已扶正"
    assert columns["result_media"] == ["https://p.example.org/a.jpg"] and columns["resolved_at"] == AT
    # An ordinary check's close keeps the owner's result and photos.
    checked = closed.model_copy(update={"on_the_spot": False})
    assert "result" not in case_columns(checked, checked.TYPE, AT)
    reported = c.CaseReported(case_no="n", source="terminal", external_id="e", description="d", observed_at=AT,
                              coordinator={"worker_id": "W001", "device_id": "SZT-0001"}, media=["https://p/a.jpg"],
                              location={"lon": 117.5, "lat": 34.8})
    columns = case_columns(reported, reported.TYPE, AT)
    assert (columns["reported_by"], columns["report_media"], columns["location"]) == \
        ("W001", ["https://p/a.jpg"], {"lon": 117.5, "lat": 34.8})


def _row(**fields):
    base = {"state": "dispatched", "close_outcome": None, "on_the_spot": False, "rejection_reason": None,
            "merged_into_case_no": None}
    return {**base, **fields}


@pytest.mark.parametrize("row, outcome, label", [
    (_row(), None, None),
    (_row(state="closed", close_outcome="resolved", on_the_spot=True), "fixed_on_the_spot", "自行处置"),
    (_row(state="closed", close_outcome="resolved"), "resolved", "已解决"),
    (_row(state="closed", close_outcome="explained"), "explained", "已解释说明"),
    (_row(state="rejected", rejection_reason="不在本街道"), "rejected", "不予受理：不在本街道"),
    (_row(state="merged", merged_into_case_no="20261206-0001"), "merged", "已合并至 20261206-0001"),
])
def test_a_coordinators_report_says_how_it_ended_in_chinese(row, outcome, label):
    assert coordinator.outcome(row) == outcome and coordinator.outcome_label(row) == label


def test_states_are_labelled_in_chinese():
    assert coordinator.state_label("in_progress") == "处置中" and coordinator.state_label(None) == "待受理"
    assert coordinator.state_label("closed") == "已结案"


def test_the_report_cursor_is_the_coordinators_own():
    cursor = report_cursor.encode("W001", report_cursor.ReportPosition(AT, "case-1"))
    assert report_cursor.decode(cursor, "W001") == report_cursor.ReportPosition(AT, "case-1")
    for bad, worker in ((cursor, "W002"), ("", "W001"), ("!!", "W001"), ("eyJ2IjoyfQ", "W001"), ("x" * 1001, "W001")):
        with pytest.raises(report_cursor.BadCursor):
            report_cursor.decode(bad, worker)

"""The case log's batch fold (services/supervision/domain/batch_fold.py), pure: a batch of case events folded in
order into merged case rows, history rows and clock changes in layers."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.supervision.domain.batch_fold import CaseView, plan_batch
from services.supervision.domain.policy import StreetPolicy
from shared.contracts import parse_event
from shared.contracts.cases import CaseAccepted, CaseDispatched, CaseReported, CaseSigned, CaseWarned
from shared.contracts.common import TimeLimit
from shared.messagebus import Message
from shared.worktime import WorkCalendar

pytestmark = pytest.mark.unit

ZONE = ZoneInfo("Asia/Shanghai")
POLICY = StreetPolicy(calendar=WorkCalendar(zone=ZONE), command_centers=frozenset({"zhzx"}))
AT = datetime(2026, 12, 7, 9, 30, tzinfo=ZONE)  # a Monday morning


def msg(event, case_id: str, at: datetime = AT) -> Message:
    envelope = event.envelope(source="test", case_id=case_id, occurred_at=at)
    return Message(envelope, parse_event(envelope))


def loop_of(case_id: str, case_no: str) -> list[Message]:
    due = AT + timedelta(hours=4)
    return [
        msg(CaseReported(case_no=case_no, source="terminal", external_id=f"x{case_no}", category="CM04", description="垃圾外溢", observed_at=AT,
                         unit_grid="g1"), case_id),
        msg(CaseAccepted(case_no=case_no, category="CM04", unit_grid="g1", description="垃圾外溢"), case_id),
        msg(CaseDispatched(case_no=case_no, owner="huanwei", category="CM04", unit_grid="g1", priority="normal",
                           time_limit=TimeLimit(value=4, unit="hours"), dispatched_at=AT, due_at=due), case_id),
    ]


def test_two_cases_interleaved_fold_each_in_its_own_order_into_one_row_each():
    a, b = loop_of("a", "1"), loop_of("b", "2")
    signed = msg(CaseSigned(case_no="1", owner="huanwei", update_id="u"), "a")
    plan = plan_batch([a[0], a[1], b[0], b[1], a[2], b[2], signed], {}, POLICY, AT.date())
    assert [(m.case_id, f.state, f.effect) for m, f in plan.folds] == [
        ("a", "reported", "moved"), ("a", "accepted", "moved"), ("b", "reported", "moved"),
        ("b", "accepted", "moved"), ("a", "dispatched", "moved"), ("b", "dispatched", "moved"),
        ("a", "in_progress", "moved")]
    row = plan.cases["a"]
    assert (row.state, row.events_seen, row.columns["owner"], row.columns["dispatch_count"]) == \
        ("in_progress", 4, "huanwei", 1)
    assert row.columns["signed_at"] == AT and plan.new_cases == ["a", "b"]
    # A case's clock changes keep their order, one per layer: open dispatch; stop (accepted); stop dispatch;
    # open handling + sign; stop sign (signed). b's go in the same layers as a's.
    layers = [[(op.kind, op.case_id, tuple(r["kind"] for r in op.rows)) for op in layer] for layer in plan.layers()]
    assert layers[0] == [("open", "a", ("dispatch",)), ("open", "b", ("dispatch",))]
    assert layers[3] == [("open", "a", ("handling", "sign")), ("open", "b", ("handling", "sign"))]
    assert layers[4] == [("stop", "a", ("sign", "check"))]


def test_a_known_case_folds_from_its_stored_state_and_a_refused_event_changes_nothing_but_the_history():
    late = msg(CaseAccepted(case_no="1", category="CM04", unit_grid="g1", description="x"), "a")
    plan = plan_batch([late], {"a": CaseView("dispatched", "1", "CM04", known=True)}, POLICY, AT.date())
    assert plan.folds[0][1].effect == "refused" and plan.new_cases == [] and plan.clock_ops == []
    assert plan.cases["a"].columns == {} and plan.history[0]["effect"] == "refused"


def test_only_the_poller_s_notices_of_today_leave_the_kept_days_unmarked():
    warned = msg(CaseWarned(case_no="1", owner="huanwei", stage="handling", due_at=AT), "a")
    assert plan_batch([warned], {}, POLICY, AT.date()).marked == []
    assert plan_batch([warned], {}, POLICY, AT.date() + timedelta(days=1)).marked == ["a"]

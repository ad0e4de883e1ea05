"""Supervision's pure rules: folding case events into states, reminder points on the work calendar."""
from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from services.supervision.domain.clocks import clock_runs_in, escalation_level, warn_at
from services.supervision.domain.notices import overdue_text, reminder_text
from services.supervision.domain.policy import StreetPolicy
from services.supervision.domain.read_model import case_columns
from services.supervision.domain.states import EVENT_TARGETS, STATES, TRANSITIONS, next_state
from shared.contracts.cases import FINAL_STATES, CaseDispatched
from shared.contracts.common import TimeLimit
from shared.worktime import WorkCalendar

pytestmark = pytest.mark.unit

SH = ZoneInfo("Asia/Shanghai")
CALENDAR = WorkCalendar(zone=SH)


def at(text: str) -> datetime:
    """A moment in Shanghai from 'YYYY-MM-DD HH:MM[:SS]'."""
    return datetime.fromisoformat(text).replace(tzinfo=SH)


# ---- state folding ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("current", "event_type", "expected"),
    [
        ("reported", "case.accepted", "accepted"),
        ("reported", "case.rejected", "rejected"),
        ("reported", "case.merged", "merged"),
        ("accepted", "case.dispatched", "dispatched"),
        ("dispatched", "case.returned", "returned"),
        ("returned", "case.dispatched", "dispatched"),  # 回退 then re-dispatch
        ("resolved", "case.closed", "closed"),
        ("explained", "case.closed", "closed"),
    ],
)
def test_allowed_transitions_move_the_state(current, event_type, expected):
    fold = next_state(current, event_type)
    assert (fold.state, fold.effect, fold.reason) == (expected, "moved", None)
    assert fold.applies


@pytest.mark.parametrize(
    ("current", "event_type"),
    [
        ("reported", "case.dispatched"),   # not accepted yet
        ("reported", "case.reported"),     # a second report of the same case
        ("accepted", "case.accepted"),
        ("accepted", "case.rejected"),     # once 立案, it is a case
        ("rejected", "case.accepted"),     # final
        ("merged", "case.dispatched"),     # final
        ("returned", "case.signed"),       # only its holder signs, and it has none now
        ("dispatched", "case.closed"),     # not without being resolved and checked
        ("closed", "case.dispatched"),     # only a reopened case goes out again
    ],
)
def test_refused_transitions_keep_the_state_and_say_why(current, event_type):
    fold = next_state(current, event_type)
    assert fold.state == current and fold.effect == "refused" and not fold.applies
    assert event_type in fold.reason and current in fold.reason


def test_first_event_of_an_unseen_case_creates_its_state_whatever_it_is():
    # A replay from the middle of the log: dispatched before we ever saw reported.
    assert next_state(None, "case.dispatched").state == "dispatched"
    assert next_state(None, "case.reported").effect == "moved"


@pytest.mark.parametrize("event_type", ["case.warned", "case.overdue", "case.escalated"])
def test_supervision_events_annotate_without_moving(event_type):
    fold = next_state("dispatched", event_type)
    assert (fold.state, fold.effect) == ("dispatched", "noted") and fold.applies


def test_unknown_future_types_are_history_only():
    fold = next_state("dispatched", "case.photographed")
    assert (fold.state, fold.effect) == ("dispatched", "history") and not fold.applies
    assert next_state(None, "case.photographed").state is None


def test_the_state_table_is_closed_and_matches_the_design():
    assert set(STATES) == {"reported", "rejected", "merged", "accepted", "dispatched", "returned", "in_progress",
                           "suspended", "resolved", "rework", "explained", "closed", "reopened"}
    assert all(target in TRANSITIONS for targets in TRANSITIONS.values() for target in targets)
    assert set(EVENT_TARGETS.values()) <= set(STATES)
    # The design's table, plus a manual re-dispatch by the command center from any open state.
    assert TRANSITIONS["in_progress"] == {"resolved", "explained", "suspended", "dispatched"}
    assert set(EVENT_TARGETS.values()) == set(STATES)  # every state has the event that moves a case into it
    assert TRANSITIONS["rework"] == {"dispatched"} and TRANSITIONS["closed"] == {"reopened"}


def test_the_final_states_are_those_only_a_reopening_leaves():
    # The contract's one list (every service, screen and figure reads "finished" by it) agrees with the state machine.
    assert FINAL_STATES == {state for state, targets in TRANSITIONS.items() if targets <= {"reopened"}}


def test_the_clock_runs_only_while_the_owner_holds_the_case():
    assert clock_runs_in("dispatched") and clock_runs_in("in_progress")
    for state in ("returned", "suspended", "resolved", "explained", "closed", "rejected", None):
        assert not clock_runs_in(state)


def test_a_dispatch_sets_owner_and_deadline_and_clears_the_previous_periods_warnings():
    event = CaseDispatched(
        case_no="20261127-0001", owner="huanwei", category="CM04", unit_grid="U01", priority="normal",
        time_limit=TimeLimit(value=4, unit="work_hours"), dispatched_at=at("2026-11-27 09:30"),
        due_at=at("2026-11-27 15:00"),
    )
    columns = case_columns(event, event.TYPE, at("2026-11-27 09:30"))
    assert columns["owner"] == "huanwei" and columns["due_at"] == at("2026-11-27 15:00")
    assert columns["warned_at"] is None and columns["overdue_at"] is None and columns["escalation_level"] is None
    assert case_columns(None, "case.photographed", at("2026-11-27 09:30")) == {}


# ---- the 75% reminder on the work calendar --------------------------------------------------------

@pytest.mark.parametrize(
    ("dispatched", "value", "unit", "due", "expected"),
    [
        # 4 work hours from Friday 09:30: 3 h = 2.5 h before lunch + 0.5 h after 13:30.
        ("2026-11-27 09:30", 4, "work_hours", "2026-11-27 15:00", "2026-11-27 14:00"),
        # Friday 16:30: 1 h on Friday, the other 2 h on Monday morning (the weekend does not count).
        ("2026-11-27 16:30", 4, "work_hours", "2026-11-30 11:30", "2026-11-30 10:30"),
        # 2 work days = 15 h, 75% = 11 h 15 min: 7 h on Friday, 3.5 h Monday morning, 45 min after lunch.
        ("2026-11-27 09:00", 2, "work_days", "2026-11-30 16:30", "2026-11-30 14:15"),
        # 1 work day on the eve of National Day (Oct 1–7 off): 1 h on Sep 30, 4 h 37.5 min on Oct 8.
        ("2026-09-30 16:30", 1, "work_days", "2026-10-08 15:30", "2026-10-08 14:37:30"),
        # Calendar hours (heating, 24 h): nights and weekends count.
        ("2026-11-27 22:00", 24, "hours", "2026-11-28 22:00", "2026-11-28 16:00"),
    ],
)
def test_warn_at_is_75_percent_of_the_limit_on_the_work_calendar(dispatched, value, unit, due, expected):
    assert warn_at(CALENDAR, at(dispatched), value, unit, at(due)) == at(expected)


def test_the_street_override_table_is_respected():
    # The street declares Oct 8 a day off (the national source does not know it): Oct 9 instead.
    calendar = WorkCalendar(zone=SH, overrides={date(2026, 10, 8): False})
    assert warn_at(calendar, at("2026-09-30 16:30"), 1, "work_days", at("2026-10-09 15:30")) == at("2026-10-09 14:37:30")


def test_the_reminder_never_comes_after_the_deadline():
    # routing's calendar disagreed with ours: the reminder still comes no later than due_at.
    assert warn_at(CALENDAR, at("2026-11-27 09:30"), 4, "work_hours", at("2026-11-27 11:00")) == at("2026-11-27 11:00")


# ---- escalation and texts ----------------------------------------------------------------------

def test_escalation_goes_one_level_up():
    assert escalation_level("C01", {"zhzx"}) == "command_center"      # a community
    assert escalation_level("huanwei", {"zhzx"}) == "command_center"  # a department
    assert escalation_level("zhzx", {"zhzx"}) == "leadership"         # the command center itself


def test_notice_texts():
    due = at("2026-11-27 15:30")
    assert reminder_text("20261127-0001", "垃圾箱损坏/暴露垃圾", due) == (
        "【催办】案件20261127-0001（垃圾箱损坏/暴露垃圾）将于11月27日15:30到期，请抓紧处置。"
    )
    text = overdue_text("20261127-0001", "垃圾箱损坏/暴露垃圾", due, "command_center")
    assert text.startswith("【督办】案件20261127-0001（垃圾箱损坏/暴露垃圾）已于11月27日15:30超期") and "指挥中心" in text


def test_policy_labels_unknown_categories_by_code_and_speaks_local_time():
    policy = StreetPolicy(calendar=CALENDAR, category_names={"CM04": "垃圾箱损坏/暴露垃圾"})
    assert policy.category_label("CM04") == "垃圾箱损坏/暴露垃圾" and policy.category_label("ZZ99") == "ZZ99"
    utc = datetime.fromisoformat("2026-11-27T07:30:00+00:00")
    assert policy.local(utc).isoformat() == "2026-11-27T15:30:00+08:00"


def test_the_history_keeps_no_resident_phone_or_name_in_clear():
    from services.supervision.domain.read_model import without_contacts

    data = {"case_no": "20261127-0001", "reporter": {"name": "王女士", "phone": "13800005678"}}
    assert without_contacts(data)["reporter"] == {"name": "王**", "phone": "138****5678"}
    # What intake publishes now is masked already: masking again changes nothing.
    assert without_contacts(without_contacts(data)) == without_contacts(data)
    assert without_contacts({"reporter": {"name": None, "phone": None}})["reporter"] == {"name": "(未留名)", "phone": None}
    assert without_contacts({"reporter": None}) == {"reporter": None}


def test_a_suspension_keeps_the_time_left_and_resuming_restarts_it_on_the_work_calendar():
    from services.supervision.domain.clocks import resumed_deadlines, time_left
    # Due Monday 11-30 14:00; suspended Friday 11-27 16:00: 1.5 h left that day, 3.5 h Monday morning and
    # 0.5 h after lunch = 5.5 work hours.
    left = time_left(CALENDAR, "work_hours", at("2026-11-27 16:00"), at("2026-11-30 14:00"))
    assert left == 5.5 * 3600
    # Resumed Tuesday 12-01 at 09:00: 3 h to noon, 2.5 h from 13:30 → 16:00; the reminder, 1 h left → 10:00.
    due, warn = resumed_deadlines(CALENDAR, "work_hours", at("2026-12-01 09:00"), left, 3600.0)
    assert (due, warn) == (at("2026-12-01 16:00"), at("2026-12-01 10:00"))
    # Calendar-hour limits run on the wall clock.
    due, warn = resumed_deadlines(CALENDAR, "hours", at("2026-12-01 23:00"), 7200.0, None)
    assert (due, warn) == (at("2026-12-02 01:00"), None)


def test_an_extension_moves_the_reminder_to_three_quarters_of_the_new_span():
    from services.supervision.domain.clocks import extended_warn_at
    # Started Monday 11-30 08:30, extended to Wednesday 12-02 17:30: 3 work days = 22.5 h; 75% = 16.875 h:
    # Monday's 7.5 h, Tuesday's 7.5 h, then 1.875 h from Wednesday 08:30 → 10:22:30.
    assert extended_warn_at(CALENDAR, "work_days", at("2026-11-30 08:30"), at("2026-12-02 17:30")) \
        == at("2026-12-02 10:22:30")


def test_an_extension_must_end_after_the_deadline_and_within_a_year_of_it():
    from datetime import timedelta

    from services.supervision.domain.decisions import MAX_EXTENSION, Allowed, CaseSnapshot, Refused, decide_extension, decide_update

    due = datetime(2026, 12, 2, 17, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    case = CaseSnapshot(case_id="c1", case_no="20261202-0001", state="in_progress", owner="huanwei", due_at=due,
                        extension_pending=True)
    ask = lambda until: decide_update(case, "huanwei", "task.extension-requested", case.case_no, until=until)  # noqa: E731
    grant = lambda until: decide_extension(case, case.case_no, True, until)  # noqa: E731
    for decide in (ask, grant):
        assert isinstance(decide(due + timedelta(days=3)), Allowed)
        assert isinstance(decide(due + MAX_EXTENSION), Allowed)
        for until in (due, due - timedelta(hours=1)):
            refused = decide(until)
            assert isinstance(refused, Refused) and refused.status == 422 and "after the current deadline" in refused.reason
        too_far = decide(datetime(2099, 12, 31, tzinfo=ZoneInfo("Asia/Shanghai")))
        assert isinstance(too_far, Refused) and too_far.status == 422 and "366 days" in too_far.reason
    # A denial needs no date at all.
    assert isinstance(decide_extension(case, case.case_no, False, datetime(2099, 12, 31, tzinfo=ZoneInfo("Asia/Shanghai"))), Allowed)


def test_an_update_refused_before_the_dispatch_is_known_may_have_overtaken_it_and_no_other():
    from services.supervision.domain.decisions import CaseSnapshot, decide_update, overtook_dispatch

    def case(state, owner=None):
        return CaseSnapshot(case_id="c1", case_no="20261206-0001", state=state, owner=owner)

    def held(snapshot, owner="huanwei", type_="task.accepted", case_no="20261206-0001"):
        return overtook_dispatch(snapshot, decide_update(snapshot, owner, type_, case_no))

    assert held(None)  # supervision has not seen the case at all
    for state in ("reported", "accepted", "returned", "rework", "reopened"):
        assert held(case(state, owner="chengguan" if state != "accepted" else None)), state
    assert not held(case("dispatched", owner="huanwei"))  # allowed: applied at once
    assert not held(case("dispatched", owner="chengguan"))  # another owner's task: refused at once
    assert not held(case("in_progress", owner="chengguan"))
    assert not held(case("closed", owner="huanwei"), type_="task.progress")  # final: refused at once
    assert not held(case("accepted"), case_no="20261206-9999")  # names another case (422): refused at once
    assert not held(None, type_="task.unknown")  # not an update type (422)

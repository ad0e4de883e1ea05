"""Routing's pure rules on the demo street: who owns a case, and when it is due."""
from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from shared.worktime import WorkCalendar
from services.routing.domain.dispatching import (
    MANUAL_DISPATCH_LIMIT,
    RoutingDataMissing,
    decide_owner,
    due_at,
    plan_dispatch,
)
from services.routing.domain.model import Limit, RoutingRules, rules_from_street
from services.routing.domain.redispatching import (
    CLOSED,
    OPEN,
    RETURNED,
    ManualDispatchRefused,
    RoutedCase,
    Terms,
    check_manual_dispatch,
    plan_redispatch,
    recalled_holder,
    redispatch_assignment,
)

pytestmark = pytest.mark.unit

SHANGHAI = ZoneInfo("Asia/Shanghai")
UNIT = "3704020010010201"  # a unit grid of community 370402001001 (市社家宿舍)
FRIDAY_4PM = datetime(2026, 11, 27, 16, 0, tzinfo=SHANGHAI)


@pytest.fixture(scope="module")
def rules(demo_street) -> RoutingRules:
    return rules_from_street(demo_street)


@pytest.fixture(scope="module")
def calendar() -> WorkCalendar:
    return WorkCalendar(zone=SHANGHAI)


def test_a_department_category_goes_to_its_department(rules):
    a = decide_owner(rules, "CM04", UNIT)
    assert (a.owner.code, a.owner.name, a.owner.kind) == ("huanwei", "环卫所", "department")
    assert a.limit == Limit(4, "work_hours") and a.priority == "normal" and a.manual_reason is None
    assert a.category_name == "垃圾箱损坏/暴露垃圾"


def test_a_community_category_goes_to_the_community_of_the_unit_grid(rules, demo_street):
    a = decide_owner(rules, "MD01", UNIT)
    assert a.owner.code == "370402001001" and a.owner.kind == "community"
    assert a.owner.name == demo_street.grids["370402001001"].name
    # Every unit grid's community is the first 12 digits of its code in the demo street.
    other = next(g.code for g in demo_street.level("unit") if not g.code.startswith("370402001001"))
    assert decide_owner(rules, "SQ01", other).owner.code == other[:12]


def test_a_utility_and_the_command_center_are_owners_like_departments(rules):
    assert decide_owner(rules, "MS01", UNIT).owner.code == "reli"
    ot = decide_owner(rules, "OT01", UNIT)
    assert ot.owner.code == "zhzx" and ot.manual_reason is None  # a rule, not a fallback


def test_an_unknown_category_goes_to_the_command_center_with_the_reason(rules):
    a = decide_owner(rules, "XX99", UNIT)
    assert a.owner.code == "zhzx" and a.owner.kind == "command_center"
    assert "XX99" in a.manual_reason and "未知类别" in a.manual_reason
    assert a.limit == MANUAL_DISPATCH_LIMIT and a.category_name is None


def test_an_unknown_unit_grid_goes_to_the_command_center_keeping_the_category_limit(rules):
    for unit_grid in ("3704020019999999", "370402001001"):  # unknown, and a community code (not a unit grid)
        a = decide_owner(rules, "MD01", unit_grid)
        assert a.owner.code == "zhzx" and "未知单元网格" in a.manual_reason
        assert a.limit == Limit(3, "work_days")


def test_without_a_command_center_a_fallback_is_a_data_error(rules):
    bare = RoutingRules(rules.categories, rules.unit_grid_community, rules.owners, command_center=None)
    assert decide_owner(bare, "CM04", UNIT).owner.code == "huanwei"
    with pytest.raises(RoutingDataMissing):
        decide_owner(bare, "XX99", UNIT)


@pytest.mark.parametrize(
    ("category", "expected"),
    [
        # 4 work hours from Friday 16:00: 1.5 h on Friday, 2.5 h on Monday morning.
        ("CM04", datetime(2026, 11, 30, 11, 0, tzinfo=SHANGHAI)),
        # 3 work days = 22.5 work hours: Fri 1.5 + Mon 7.5 + Tue 7.5 + Wed 6 → Wednesday 16:00.
        ("MD01", datetime(2026, 12, 2, 16, 0, tzinfo=SHANGHAI)),
        # Calendar hours run day and night, weekends included.
        ("AQ01", datetime(2026, 11, 27, 18, 0, tzinfo=SHANGHAI)),
        ("MS01", datetime(2026, 11, 28, 16, 0, tzinfo=SHANGHAI)),
    ],
)
def test_due_at_for_each_limit_unit(rules, calendar, category, expected):
    plan = plan_dispatch(rules, calendar, category=category, unit_grid=UNIT, dispatched_at=FRIDAY_4PM)
    assert plan.due_at == expected and plan.dispatched_at == FRIDAY_4PM
    assert plan.due_at.utcoffset().total_seconds() == 8 * 3600


def test_work_time_skips_national_holidays_and_follows_street_overrides(calendar):
    before_national_day = datetime(2026, 9, 30, 16, 0, tzinfo=SHANGHAI)
    assert due_at(calendar, before_national_day, Limit(4, "work_hours")) == datetime(2026, 10, 8, 11, 0, tzinfo=SHANGHAI)
    # The street declares Saturday 28 November worked (e.g. a local adjustment the source does not know).
    street_calendar = WorkCalendar(zone=SHANGHAI, overrides={date(2026, 11, 28): True})
    assert due_at(street_calendar, FRIDAY_4PM, Limit(4, "work_hours")) == datetime(2026, 11, 28, 11, 0, tzinfo=SHANGHAI)


# ---- dispatching again: by hand, after rework, after reopening -------------------------------

def routed(holder: str | None = "huanwei", status: str = OPEN, category: str = "CM04") -> RoutedCase:
    return RoutedCase(case_id="c1", case_no="20261127-0001", category=category, unit_grid=UNIT, description="垃圾外溢",
                      location=None, address="文化路1号", media=[], holder=holder, status=status)


def test_a_manual_dispatch_recalls_the_current_holder(rules):
    assert check_manual_dispatch(routed(holder="huanwei"), "chengguan", rules) == "huanwei"
    # The command center holding an unrouted case is recalled like any owner.
    assert check_manual_dispatch(routed(holder="zhzx"), "370402001001", rules) == "zhzx"


def test_a_returned_case_has_nobody_to_recall_and_may_go_back_to_whoever_returned_it(rules):
    assert check_manual_dispatch(routed(holder=None, status=RETURNED), "chengguan", rules) is None
    assert check_manual_dispatch(routed(holder=None, status=RETURNED), "huanwei", rules) is None


@pytest.mark.parametrize(
    ("case", "owner", "kind"),
    [
        (routed(), "nobody", "unknown_owner"),
        (routed(), "3704020010010201", "unknown_owner"),  # a unit grid is not an owner; its community is
        (routed(holder=None, status=CLOSED), "chengguan", "closed"),
        (routed(holder="huanwei"), "huanwei", "held_already"),
    ],
)
def test_a_manual_dispatch_is_refused_with_a_reason(rules, case, owner, kind):
    with pytest.raises(ManualDispatchRefused) as refused:
        check_manual_dispatch(case, owner, rules)
    assert refused.value.kind == kind
    assert owner in refused.value.reason if kind == "unknown_owner" else case.case_no in refused.value.reason
    if kind == "unknown_owner":
        assert "/api/v1/owners" in refused.value.reason


def test_recalled_holder_is_only_someone_else():
    assert recalled_holder(None, "huanwei") is None
    assert recalled_holder("huanwei", "huanwei") is None
    assert recalled_holder("zhzx", "huanwei") == "zhzx"


def test_a_redispatch_runs_on_the_category_limit_from_now_whoever_the_owner(rules, calendar):
    # Rework of a community case dispatched to the community: same limit, counted afresh.
    plan = plan_redispatch(rules, calendar, category="MD01", owner_code="370402001001", last=None,
                           dispatched_at=FRIDAY_4PM)
    a = plan.assignment
    assert a.owner.code == "370402001001" and a.limit == Limit(3, "work_days") and a.manual_reason is None
    assert plan.due_at == datetime(2026, 12, 2, 16, 0, tzinfo=SHANGHAI)
    # By hand to another department than the category's: still the category's limit and urgency.
    other = plan_redispatch(rules, calendar, category="CM04", owner_code="chengguan", last=None, dispatched_at=FRIDAY_4PM)
    assert other.assignment.owner.code == "chengguan" and other.assignment.limit == Limit(4, "work_hours")
    assert other.due_at == datetime(2026, 11, 30, 11, 0, tzinfo=SHANGHAI)


def test_an_unknown_category_keeps_the_terms_of_its_last_dispatch(rules, calendar):
    last = Terms(Limit(2, "hours"), "high")
    plan = plan_redispatch(rules, calendar, category="XX99", owner_code="huanwei", last=last, dispatched_at=FRIDAY_4PM)
    assert plan.assignment.limit == Limit(2, "hours") and plan.assignment.priority == "high"
    assert plan.due_at == datetime(2026, 11, 27, 18, 0, tzinfo=SHANGHAI)


def test_an_owner_the_street_no_longer_lists_is_still_the_one_named(rules):
    a = redispatch_assignment(rules, category="CM04", owner_code="gone", last=None)
    assert a.owner.code == "gone" and a.owner.name == "" and a.limit == Limit(4, "work_hours")

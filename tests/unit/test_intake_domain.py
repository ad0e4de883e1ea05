"""受理 decisions and case numbers, without I/O."""
from __future__ import annotations

from datetime import date

import pytest

from services.intake.domain import held
from services.intake.domain.assessment import Assessed, Rejected, assess
from services.intake.domain.case_numbers import format_case_no
from services.intake.domain.held import HeldCase, Unacceptable, WrongState
from shared.contracts.common import Location
from shared.contracts.reports import ReportSubmitted
from shared.street import GridLocator

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def locator(demo_street):
    return GridLocator(demo_street)


def _report(**fields) -> ReportSubmitted:
    body = {"source": "terminal", "external_id": "t-1", "category": "CM04", "description": "垃圾箱破损",
            "location": {"lon": 117.575168, "lat": 34.871845}, "observed_at": "2026-11-27T09:00:00+08:00"}
    body.update(fields)
    return ReportSubmitted.model_validate(body)


def test_a_located_report_with_a_category_is_accepted_in_its_unit_grid(locator, demo_street):
    outcome = assess(_report(), locator, set(demo_street.categories))
    assert isinstance(outcome, Assessed) and outcome.accepted
    assert outcome.unit_grid == "3704020010010201"


def test_a_point_outside_the_street_is_rejected_with_the_reason(locator, demo_street):
    outcome = assess(_report(location={"lon": 116.4, "lat": 39.9}), locator, set(demo_street.categories))
    assert isinstance(outcome, Rejected) and "outside the street" in outcome.reason


def test_an_unknown_category_is_rejected(locator, demo_street):
    outcome = assess(_report(category="XX99"), locator, set(demo_street.categories))
    assert isinstance(outcome, Rejected) and "XX99" in outcome.reason


def test_without_a_category_the_case_waits_for_classification(locator, demo_street):
    outcome = assess(_report(category=None), locator, set(demo_street.categories))
    assert isinstance(outcome, Assessed) and not outcome.accepted and "classif" in outcome.hold_reason


def test_an_address_is_located_through_the_registry(locator, demo_street):
    outcome = assess(_report(location=None, address="文化路街道 市社家宿舍2号楼 3单元"), locator,
                     set(demo_street.categories))
    assert isinstance(outcome, Assessed) and outcome.accepted
    assert outcome.unit_grid == "3704020010010201" and outcome.address == "文化路街道市社家宿舍2号楼"
    assert outcome.location is not None


def test_an_unknown_address_waits_for_the_command_center(locator, demo_street):
    outcome = assess(_report(location=None, address="不存在小区99号楼"), locator, set(demo_street.categories))
    assert isinstance(outcome, Assessed) and not outcome.accepted and outcome.unit_grid is None


def test_case_numbers_are_the_day_and_a_four_digit_sequence():
    assert format_case_no(date(2026, 11, 27), 1) == "20261127-0001"
    assert format_case_no(date(2026, 11, 27), 12345) == "20261127-12345"
    with pytest.raises(ValueError):
        format_case_no(date(2026, 11, 27), 0)


# ---- held reports: what the command center may do ------------------------------------------------

INSIDE = Location(lon=117.575168, lat=34.871845)  # in unit grid 3704020010010201
OTHER_GRID = "3704020010010102"


def _held(**fields) -> HeldCase:
    values = {"case_no": "20261127-0001", "state": "reported", "category": None, "unit_grid": None,
              "location": None, "address": "不存在小区99号楼"}
    values.update(fields)
    return HeldCase(**values)


@pytest.fixture(scope="module")
def unit_grids(demo_street):
    return frozenset(g.code for g in demo_street.level("unit"))


@pytest.mark.parametrize("action", ["classify", "locate", "reject", "merge"])
def test_only_a_held_report_may_be_acted_on(action):
    assert held.may("reported", action)
    for state in ("accepted", "rejected", "merged", "dispatched", "closed", "nonsense"):
        assert not held.may(state, action)
        with pytest.raises(WrongState, match=state):
            held.ensure_may(_held(state=state), action)


def test_a_case_is_complete_with_a_category_and_a_unit_grid():
    assert held.is_complete(_held(category="CM04", unit_grid=OTHER_GRID))
    assert not held.is_complete(_held(category="CM04"))
    assert not held.is_complete(_held(unit_grid=OTHER_GRID))
    assert "locates" in held.hold_reason("CM04", None) and "classif" in held.hold_reason(None, OTHER_GRID)
    assert held.hold_reason(None, None) == held.hold_reason("CM04", None)  # the place is missing first
    assert held.hold_reason("CM04", OTHER_GRID) is None


def test_classifying_sets_a_known_category_and_refuses_an_unknown_one(demo_street):
    categories = set(demo_street.categories)
    case = held.classify(_held(), "CM04", categories)
    assert case.category == "CM04" and case.state == "reported" and not held.is_complete(case)
    assert held.is_complete(held.classify(_held(unit_grid=OTHER_GRID), "CM04", categories))
    with pytest.raises(Unacceptable, match="XX99"):
        held.classify(_held(), "XX99", categories)
    with pytest.raises(WrongState):
        held.classify(_held(state="accepted"), "CM04", categories)


def test_locating_at_a_point_sets_its_unit_grid_and_refuses_a_point_outside(locator):
    case = held.locate_at(_held(category="CM04"), INSIDE, locator)
    assert case.unit_grid == "3704020010010201" and case.location == INSIDE and held.is_complete(case)
    assert case.address == "不存在小区99号楼"  # the reporter's words stay
    with pytest.raises(Unacceptable, match="outside the street"):
        held.locate_at(_held(), Location(lon=116.4, lat=39.9), locator)
    with pytest.raises(WrongState):
        held.locate_at(_held(state="rejected"), INSIDE, locator)


def test_locating_in_a_unit_grid_needs_a_known_unit_grid_code(locator, unit_grids):
    case = held.locate_in(_held(category="CM04"), OTHER_GRID, unit_grids, locator)
    assert case.unit_grid == OTHER_GRID and case.location is None and case.address == "不存在小区99号楼"
    assert held.is_complete(case)
    with pytest.raises(Unacceptable, match="unknown unit grid"):
        held.locate_in(_held(), "9999", unit_grids, locator)
    with pytest.raises(Unacceptable, match="unknown unit grid"):
        held.locate_in(_held(), "370402001001", unit_grids, locator)  # a community, not a unit grid


def test_a_point_in_another_grid_gives_way_to_the_operators_unit_grid(locator, unit_grids):
    pointed = _held(unit_grid="3704020010010201", location=INSIDE)
    assert held.locate_in(pointed, "3704020010010201", unit_grids, locator).location == INSIDE
    moved = held.locate_in(pointed, OTHER_GRID, unit_grids, locator)
    assert moved.unit_grid == OTHER_GRID and moved.location is None


def test_a_duplicate_follows_only_another_open_case():
    duplicate = _held(case_no="20261127-0002")
    target = _held(case_no="20261127-0001", state="accepted", category="CM04", unit_grid=OTHER_GRID)
    assert held.ensure_mergeable(duplicate, target, target.case_no) is target
    with pytest.raises(Unacceptable, match="itself"):
        held.ensure_mergeable(duplicate, duplicate, duplicate.case_no)
    with pytest.raises(Unacceptable, match="20261127-0099"):
        held.ensure_mergeable(duplicate, None, "20261127-0099")
    for state in ("reported", "rejected", "merged"):
        with pytest.raises(WrongState, match=state):
            held.ensure_mergeable(duplicate, _held(state=state), "20261127-0001")
    with pytest.raises(WrongState, match="accepted"):
        held.ensure_mergeable(_held(state="accepted"), target, target.case_no)


def test_a_case_number_block_is_a_second_of_reports_one_at_a_street_s_pace_and_bounded_in_a_burst():
    from services.intake.domain.case_numbers import LARGEST_BLOCK, block_size
    assert block_size(0) == 1 and block_size(1) == 1  # a report every few minutes: a restart leaves no gap
    assert block_size(37) == 37
    assert block_size(5000) == LARGEST_BLOCK

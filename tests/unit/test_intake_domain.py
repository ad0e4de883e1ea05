"""受理 decisions and case numbers, without I/O."""
from __future__ import annotations

from datetime import date

import pytest

from services.intake.domain.assessment import Assessed, Rejected, assess
from services.intake.domain.case_numbers import format_case_no
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

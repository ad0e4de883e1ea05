"""notify's pure rules: reply texts, phone numbers fit for SMS and for display, retry decisions."""
from __future__ import annotations

import pytest

from services.notify.adapters.templates import load_template_sources
from services.notify.domain.delivery import MAX_ATTEMPTS, AttemptResult, Outcome, after_attempt, retry_delay
from services.notify.domain.replies import (
    ReplyTemplates,
    TemplateMissing,
    mask_address,
    plan_acknowledgement,
    sms_number,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def templates() -> ReplyTemplates:
    return ReplyTemplates(load_template_sources())


def test_acknowledgement_names_the_case_and_is_signed(templates):
    plan = plan_acknowledgement(templates, case_no="20261127-0042", phone="13900001001", signature="文化路街道")
    assert plan.text == "【文化路街道】您反映的问题已受理，案件编号20261127-0042。我们将按时限处理并回复您。"
    assert (plan.kind, plan.channel, plan.to, plan.state) == ("acknowledgement", "sms", "13900001001", "pending")


def test_a_missing_value_is_an_error_not_a_blank():
    with pytest.raises(Exception, match="case_no"):
        ReplyTemplates({"acknowledgement": "编号{{ case_no }}"}).render("acknowledgement")
    with pytest.raises(TemplateMissing):
        ReplyTemplates({}).render("survey")


@pytest.mark.parametrize("given, number", [
    ("13900001001", "13900001001"),
    (" 139-0000-1001 ", "13900001001"),
    ("+86 139 0000 1001", "13900001001"),
    ("010-62345678", None),  # a landline: SMS cannot reach it
    ("1234", None),
    ("", None),
    (None, None),
])
def test_sms_number_takes_only_mainland_mobiles(given, number):
    assert sms_number(given) == number


def test_a_landline_reply_is_held_with_a_reason(templates):
    plan = plan_acknowledgement(templates, case_no="20261127-0001", phone="010-62345678", signature="文化路街道")
    assert plan.state == "held" and "mobile" in plan.detail and plan.to == "010-62345678"


@pytest.mark.parametrize("given, shown", [
    ("13900001001", "139****1001"),
    ("010-62345678", "010-****5678"),
    ("+86 139 0000 1001", "+86 139****1001"),
    ("12345", "****"),
])
def test_addresses_are_masked_for_display(given, shown):
    assert mask_address(given) == shown
    assert "0000" not in mask_address(given)


def test_attempt_outcomes():
    assert after_attempt(0, AttemptResult(Outcome.DELIVERED)).state == "sent"
    refused = after_attempt(0, AttemptResult(Outcome.REFUSED, "400 bad number"))
    assert (refused.state, refused.error, refused.final) == ("failed", "400 bad number", True)
    retry = after_attempt(0, AttemptResult(Outcome.UNAVAILABLE, "503"))
    assert (retry.state, retry.attempts, retry.retry_in, retry.final) == ("pending", 1, 1.0, False)
    last = after_attempt(MAX_ATTEMPTS - 1, AttemptResult(Outcome.UNAVAILABLE, "503"))
    assert last.state == "failed" and f"after {MAX_ATTEMPTS} attempts" in last.error


def test_backoff_doubles_and_is_capped():
    assert [retry_delay(n) for n in range(1, 5)] == [1, 2, 4, 8]
    assert retry_delay(30) == 60

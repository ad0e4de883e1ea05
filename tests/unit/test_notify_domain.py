"""notify's pure rules: reply texts, phone numbers fit for SMS and for display, retry decisions."""
from __future__ import annotations

import pytest

from services.notify.adapters.templates import load_template_sources
from datetime import datetime, timedelta, timezone

from services.notify.domain.delivery import (
    AttemptResult,
    Outcome,
    RetryPolicy,
    after_attempt,
    backoff,
    expired,
    expires_at,
    retry_delay,
)
from services.notify.domain.replies import (
    ReplyTemplates,
    TemplateMissing,
    brief,
    plan_acknowledgement,
    plan_reply,
    street_moment,
)
from shared.contracts.cases import STATE_AFTER
from services.notify.domain.residents import (
    STATE_LABELS,
    SurveyState,
    lockout_seconds,
    parse_sms_verdict,
    state_label,
    survey_closes_at,
    survey_refusal,
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


def test_a_landline_reply_is_held_with_a_reason(templates):
    plan = plan_acknowledgement(templates, case_no="20261127-0001", phone="010-62345678", signature="文化路街道")
    assert plan.state == "held" and "mobile" in plan.detail and plan.to == "010-62345678"


T0 = datetime(2026, 11, 27, 9, 0, tzinfo=timezone(timedelta(hours=8)))
DAY = T0 + timedelta(hours=24)


def test_attempt_outcomes():
    delivered = after_attempt(0, AttemptResult(Outcome.DELIVERED), now=T0, expiry=DAY)
    assert (delivered.state, delivered.attempts, delivered.final) == ("sent", 1, True)
    refused = after_attempt(0, AttemptResult(Outcome.REFUSED, "400 bad number"), now=T0, expiry=DAY)
    assert (refused.state, refused.error, refused.final) == ("failed", "400 bad number", True)
    retry = after_attempt(0, AttemptResult(Outcome.UNAVAILABLE, "503"), now=T0, expiry=DAY, rand=lambda: 0.0)
    assert (retry.state, retry.attempts, retry.retry_in, retry.final, retry.error) == ("pending", 1, 1.0, False, "503")


def test_an_outage_is_retried_until_the_reply_expires_not_after_a_count():
    # Attempt 500 an hour into the outage: still pending, at the cap.
    late = after_attempt(499, AttemptResult(Outcome.UNAVAILABLE, "503"), now=T0 + timedelta(hours=1), expiry=DAY,
                         rand=lambda: 0.0)
    assert late.state == "pending" and late.retry_in == 30
    # The next try would fall after the expiry: settled as failed, with the last error.
    end = after_attempt(600, AttemptResult(Outcome.UNAVAILABLE, "timeout"), now=DAY - timedelta(seconds=10),
                        expiry=DAY, rand=lambda: 0.0)
    assert end.state == "failed" and "expired" in end.error and "timeout" in end.error and "601" in end.error


def test_backoff_doubles_and_is_capped():
    assert [backoff(n) for n in range(1, 6)] == [1, 2, 4, 8, 16]
    assert backoff(5) == 16 and backoff(6) == 30 and backoff(10_000) == 30
    fast = RetryPolicy(base_seconds=0.1, cap_seconds=0.5)
    assert [backoff(n, fast) for n in range(1, 5)] == [0.1, 0.2, 0.4, 0.5]


def test_jitter_stays_within_half_the_delay_and_spreads():
    assert retry_delay(4, rand=lambda: 0.0) == 8
    assert retry_delay(4, rand=lambda: 1.0) == 4
    import random
    rng = random.Random(7)
    draws = [retry_delay(20, rand=rng.random) for _ in range(200)]
    assert all(15 <= d <= 30 for d in draws) and len({round(d, 1) for d in draws}) > 50


def test_expiry_is_the_ttl_after_creation():
    assert expires_at(T0, 24) == DAY and expires_at(T0, 0.5) == T0 + timedelta(minutes=30)
    assert not expired(DAY, DAY - timedelta(seconds=1)) and expired(DAY, DAY)


def test_every_reply_kind_renders_signed_with_the_case(templates):
    cases = {
        "rejection": ("rejection", {"reason": "不属于本街道辖区"}, "不属于本街道辖区"),
        "progress_merged": ("progress", {"into": "20261127-0001"}, "与案件20261127-0001为同一问题，已合并办理"),
        "progress_signed": ("progress", {}, "已由责任单位签收，正在处置"),
        "progress_extended": ("progress", {"due": "11月30日17:30"}, "11月30日17:30"),
        "progress_reopened": ("progress", {}, "已重新交办"),
        "explanation": ("explanation", {"explanation": "需热力公司停暖后施工"}, "需热力公司停暖后施工"),
        "resolution": ("resolution", {"result": "已更换灯泡"}, "已办结：已更换灯泡。"),
        "survey": ("survey", {"closes": "12月4日17:30", "survey_link": "https://x.example/my/?s=abc.def"},
                   "请回复1满意、2基本满意、3不满意，或点击链接评价 https://x.example/my/?s=abc.def "),
    }
    for template, (kind, values, expected) in cases.items():
        plan = plan_reply(templates, kind, template, phone="139 0000 1001", signature="文化路街道",
                          case_no="20261127-0042", **values)
        assert plan.text.startswith("【文化路街道】") and "20261127-0042" in plan.text and expected in plan.text
        assert (plan.kind, plan.template, plan.to, plan.state) == (kind, template, "13900001001", "pending")


def test_street_moment_and_brief():
    assert street_moment(datetime(2026, 11, 30, 9, 30, tzinfo=timezone.utc)) == "11月30日17:30"
    assert brief("已更换灯泡。") == "已更换灯泡"
    assert brief("  多个\n空格  ") == "多个 空格"
    assert len(brief("很长" * 200, 50)) == 50 and brief("很长" * 200, 50).endswith("…")


def test_every_state_has_a_chinese_label():
    assert set(STATE_AFTER.values()) <= set(STATE_LABELS)
    assert STATE_AFTER["case.signed"] == "in_progress" and STATE_AFTER["case.reworked"] == "rework"
    assert state_label("closed") == "已办结" and state_label("brand-new") == "brand-new"


@pytest.mark.parametrize("text, verdict", [
    ("1", "satisfied"), (" 2 ", "basically_satisfied"), ("3", "unsatisfied"),
    ("１", "satisfied"), ("３。", "unsatisfied"), ("满意", "satisfied"), ("基本满意", "basically_satisfied"),
    ("不满意！", "unsatisfied"), ("4", None), ("12", None), ("路灯还是不亮", None), ("", None),
])
def test_sms_verdicts(text, verdict):
    assert parse_sms_verdict(text) == verdict


def test_survey_rules():
    closes = survey_closes_at(T0, 7)
    assert closes == T0 + timedelta(days=7)
    assert "not closed" in survey_refusal(None, T0)
    assert survey_refusal(SurveyState(closes, None), T0) is None
    assert "window" in survey_refusal(SurveyState(closes, None), closes)
    assert "already answered" in survey_refusal(SurveyState(closes, T0), T0, "closed")
    assert "handled again" in survey_refusal(SurveyState(closes, T0), T0, "reopened")


def test_lookups_lock_after_five_failures_in_fifteen_minutes():
    fails = [T0 + timedelta(minutes=m) for m in (0, 1, 2, 3)]
    assert lockout_seconds(fails, T0 + timedelta(minutes=4)) == 0
    fails.append(T0 + timedelta(minutes=4))
    # Free again when the oldest of the five ages out: 15 min after T0.
    assert lockout_seconds(fails, T0 + timedelta(minutes=5)) == 600
    assert lockout_seconds(fails, T0 + timedelta(minutes=15)) == 0
    # Old failures do not count.
    assert lockout_seconds([T0 - timedelta(hours=1)] * 10, T0) == 0

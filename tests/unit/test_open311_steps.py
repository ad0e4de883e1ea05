"""Open311's updates read each step of a case truthfully (services/intake/domain/open311.step_of): only a closed,
checked case is FIXED; rejected, merged and explained ones say what they are; texts leave masked."""
from __future__ import annotations

import pytest

from services.intake.domain.open311 import UPDATE_TYPES, Service, definition_xml, service_definition, step_of


@pytest.mark.parametrize("event_type, data, status, code", [
    ("case.accepted", {}, "OPEN", "accepted"),
    ("case.rejected", {"reason": "不属于本街道"}, "NOT_COUNCILS_RESPONSIBILITY", "rejected"),
    ("case.merged", {"into_case_no": "20261206-0001"}, "DUPLICATE", "merged"),
    ("case.dispatched", {"owner_name": "环卫所"}, "ACTION_SCHEDULED", "dispatched"),
    ("case.signed", {}, "IN_PROGRESS", "in_progress"),
    ("case.resolved", {"result": "已修"}, "IN_PROGRESS", "resolved"),
    ("case.explained", {"explanation": "需市里立项"}, "NO_FURTHER_ACTION", "explained"),
    ("case.closed", {"outcome": "resolved", "result": "已修"}, "FIXED", "closed-resolved"),
    ("case.closed", {"outcome": "explained", "result": "需市里立项"}, "NO_FURTHER_ACTION", "closed-explained"),
    ("case.reopened", {}, "OPEN", "reopened"),
    ("case.returned", {"reason": "不归我们"}, "INVESTIGATING", "returned"),
])
def test_each_step_has_its_status_and_code(event_type, data, status, code):
    step = step_of(event_type, data, "dispatched")
    assert step is not None and (step.status, step.code, step.state) == (status, code, code)
    assert event_type in UPDATE_TYPES and step.note


def test_a_comment_keeps_the_case_status_and_numbers_are_masked():
    step = step_of("case.commented", {"text": "请回电13900001001", "media": ["/media/" + "a" * 64]}, "in_progress")
    assert step is not None and step.status == "IN_PROGRESS" and step.state is None
    assert "13900001001" not in step.note and "139****1001" in step.note and step.media_url
    assert step_of("case.rejected", {"reason": "打13900001001"}, None).note.count("139****1001") == 1
    assert step_of("case.warned", {}, "dispatched") is None  # internal deadlines are not the public's


def test_the_definition_is_one_root_with_attributes_for_urgent_categories():
    urgent, plain = Service("SA01", "安全隐患", "安全", "urgent"), Service("CM04", "垃圾箱", "城市管理")
    assert service_definition(plain)["attributes"] == []
    xml = definition_xml(service_definition(urgent)).decode()
    assert xml.count("<service_definition>") == 1 and "<code>danger</code>" in xml and "<key>yes</key>" in xml


def test_an_approved_extension_is_news_and_a_denied_one_is_not():
    approved = step_of("case.extension-decided", {"approved": True, "due_at": "2026-12-08T17:30:00+08:00"}, "in_progress")
    assert approved is not None and approved.status == "IN_PROGRESS" and "12月8日17:30" in approved.note
    assert approved.state is None
    assert step_of("case.extension-decided", {"approved": False, "due_at": "2026-12-08T17:30:00+08:00"},
                   "in_progress") is None


def test_a_reply_to_the_resident_is_an_update_without_their_link_or_a_number():
    from services.intake.domain.open311 import reply_step

    survey = ("【文化路街道】回访：您反映的问题（编号20261206-0001）已办结，请回复1满意、2基本满意、3不满意，或点击链接评价 "
              "https://wangge.example/my/?s=NWVmZWZk.9ei_v6mX ，12月13日17:30前有效。")
    step = reply_step("survey", "sent", survey, "closed-resolved")
    # UNCHANGED: a reply moves no state (it may be recorded before the state change it follows)
    assert step is not None and (step.status, step.code, step.state) == ("UNCHANGED", "closed-resolved", None)
    assert step.note.startswith("答复居民：【文化路街道】回访") and "http" not in step.note and "?s=" not in step.note
    quoted = reply_step("resolution", "held", "【文化路街道】已办结：已修好，有事请拨13900001001", "closed-resolved")
    assert quoted is not None and "13900001001" not in quoted.note and "139****1001" in quoted.note
    assert reply_step("progress", "failed", "签收", "in_progress") is None  # nobody was told
    assert reply_step("escalation", "sent", "王主任：案件已升级", "dispatched") is None  # staff, not the resident
    assert reply_step("acknowledgement", "sent", "已受理", "") is None  # a held report is not public


def test_a_replys_update_id_is_one_per_reply_event_and_keeps_the_old_key_without_one():
    import uuid

    from services.intake.domain.open311 import reply_update_id
    case = uuid.uuid4()
    first = reply_update_id(case, "e-1", "progress", "已签收")
    assert first == reply_update_id(case, "e-1", "progress", "已签收")  # every copy of the reply
    assert first != reply_update_id(case, "e-2", "progress", "已签收")  # the same words at another step
    assert first != reply_update_id(uuid.uuid4(), "e-1", "progress", "已签收")
    legacy = reply_update_id(case, None, "progress", "已签收")
    assert legacy == str(uuid.uuid5(case, "reply:progress:已签收")) and legacy != first

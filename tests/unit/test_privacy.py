"""Personal data masked where it leaves its owner: free text, contact fields, names, log lines and tracebacks."""
from __future__ import annotations

import io
import logging
import re

import pytest

from services.intake.handlers import contact_of, masked_reporter
from services.notify.domain.replies import (
    AWAITING_CONTACT,
    CONTACT_ERASED,
    ReplyTemplates,
    erased_fields,
    mask_address,
    plan_without_contact,
)
from shared.contracts.common import Reporter
from shared.contracts.reports import ReportSubmitted
from shared.logs import PhoneMaskingFilter, log_handler, mask_name, mask_personal, mask_phone_number
from tests.privacy import FULL_MOBILE, PhoneScan

pytestmark = pytest.mark.unit

DIGITS = re.compile(r"\d")


@pytest.mark.parametrize("text, masked", [
    ("居民13900001001来电", "居民139****1001来电"),
    ("请回电 139 0000 1001 或 139-0000-2002", "请回电 139****1001 或 139****2002"),
    ("+86 139 0000 1001", "+86 139****1001"),
    ("００８６１３９００００１００１", "0086139****1001"),
    ("手机１３９００００１００１", "手机139****1001"),
    ("座机0632-3311234、(010)62345678、（010）6234 5678", "座机0632-****1234、(010)****5678、（010）****5678"),
    ("案件编号20261127-0001，坐标117.575168,34.871845，2026-11-27 09:12", None),
])
def test_phone_numbers_in_free_text_are_masked_and_other_numbers_are_left_alone(text, masked):
    assert mask_personal(text) == (text if masked is None else masked)
    assert not FULL_MOBILE.search(mask_personal(text))


@pytest.mark.parametrize("phone, masked", [
    ("13900001001", "139****1001"),
    (" +86 139-0000-1001 ", "139****1001"),
    ("１３９００００１００１", "139****1001"),
    ("010-62345678", "010-****5678"),
    ("(0632)3311234", "(0632)****1234"),
    ("62345678", "****5678"),          # a local number without area code
    ("400-123-4567", "****4567"),
    ("12345", "****45"),
    ("电话13900001001转2", "电话139****1001转2"),
    ("139****1001", "139****1001"),    # masked already
    (None, None),
    ("  ", None),
])
def test_a_contact_phone_keeps_at_most_its_ends(phone, masked):
    assert mask_phone_number(phone) == masked
    if masked:
        assert mask_phone_number(masked) == masked and not FULL_MOBILE.search(masked)


@pytest.mark.parametrize("name, masked", [
    ("李先生", "李**"), ("张三", "张*"), ("欧阳娜娜", "欧***"), ("李", "*"), (" 王女士 ", "王**"),
    (None, "(未留名)"), ("", "(未留名)"), ("李**", "李**"), ("(未留名)", "(未留名)"),
])
def test_names_keep_their_first_character(name, masked):
    assert mask_name(name) == masked


def test_a_local_number_as_an_address_is_not_given_away_by_its_first_digits():
    assert mask_address("62345678") == "****5678"
    assert mask_address("139****1001") == "139****1001" and mask_address("") == "****"


def _report(reporter: dict | None) -> ReportSubmitted:
    return ReportSubmitted.model_validate({
        "source": "hotline", "external_id": "h-1", "description": "路灯不亮，请回电13900001001", "address": "文化路12号",
        "reporter": reporter, "observed_at": "2026-11-27T09:00:00+08:00"})


def test_intake_publishes_the_reporter_masked_and_hands_the_contact_over_only_with_a_phone():
    report = _report({"name": "李先生", "phone": " 139 0000 1001 "})
    assert masked_reporter(report.reporter) == Reporter(name="李**", phone="139****1001")
    assert contact_of(report) == Reporter(name="李先生", phone="139 0000 1001")
    assert masked_reporter(Reporter(name=None, phone=None)) == Reporter(name="(未留名)", phone=None)
    assert contact_of(_report({"name": "李先生", "phone": None})) is None  # a name alone answers no one
    assert contact_of(_report(None)) is None and masked_reporter(None) is None


def test_a_reply_without_a_contact_waits_for_it_or_is_held_when_it_was_erased():
    templates = ReplyTemplates({"acknowledgement": "【{{ signature }}】已受理，编号{{ case_no }}。"})
    waiting = plan_without_contact(templates, "acknowledgement", "acknowledgement", erased=False, signature="街道",
                                   case_no="20261127-0001")
    erased = plan_without_contact(templates, "acknowledgement", "acknowledgement", erased=True, signature="街道",
                                  case_no="20261127-0001")
    assert (waiting.state, waiting.to, waiting.detail) == ("awaiting_contact", "", AWAITING_CONTACT)
    assert (erased.state, erased.to, erased.detail) == ("held", "", CONTACT_ERASED)
    assert "20261127-0001" in waiting.text
    assert erased_fields(name=True, phone=True, follower_phones=False, delivery_addresses=True) == [
        "name", "phone", "delivery_addresses"]


def _log_with(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"test.privacy.{id(handler)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def test_a_log_line_with_an_exception_holding_a_phone_is_masked_in_the_traceback_too():
    out = io.StringIO()
    log = _log_with(log_handler("notify", out))
    try:
        raise ValueError("gateway refused 13900001001: 号码 139-0000-2002 无效")
    except ValueError:
        log.exception("sending to %s failed", "13900003003")
    log.warning("a stack for 13900004004", stack_info=True)
    text = out.getvalue()
    assert "Traceback" in text and "ValueError: gateway refused 139****1001: 号码 139****2002 无效" in text
    assert "sending to 139****3003 failed" in text and "a stack for 139****4004" in text
    assert not FULL_MOBILE.search(text)


def test_other_handlers_of_a_filtered_record_see_the_traceback_masked():
    record = None
    try:
        raise RuntimeError("call 13900001001")
    except RuntimeError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed for %s", ("13900002002",), sys.exc_info())
    assert PhoneMaskingFilter().filter(record)
    plain = logging.Formatter().format(record)  # not the services' formatter: the filter alone did it
    assert "139****1001" in plain and "139****2002" in plain and not FULL_MOBILE.search(plain)


def test_the_run_wide_log_scan_finds_a_number_the_services_handler_would_let_through():
    scan = PhoneScan()
    scan._service = logging.StreamHandler(io.StringIO())  # an unmasked handler: what the scan must catch
    scan._service.setFormatter(logging.Formatter("%(message)s"))
    scan.emit(logging.LogRecord("svc", logging.INFO, __file__, 1, "resident %s", ("139 0000 1001",), None))
    scan.emit(logging.LogRecord("svc", logging.INFO, __file__, 1, "case %s", ("20261127-0001",), None))
    assert [leak.logger for leak in scan.leaks] == ["svc"] and scan.scanned == 2
    masked = PhoneScan()  # the services' own handler: nothing gets through
    masked.emit(logging.LogRecord("svc", logging.INFO, __file__, 1, "resident %s", ("139 0000 1001",), None))
    assert masked.leaks == [] and masked.scanned == 1


def test_the_scan_finds_phones_however_written_but_not_in_ids():
    for text in ("请拨13900001001", "+86 139 0000 1001", "+86-139-0000-1001", "tel:139-0000-1001。"):
        assert FULL_MOBILE.search(text), text
    # The digits of a UUID can spell 1[3-9]+9 digits across its dashes; an id is not a resident's phone.
    for ids in ("5ed16137-1964-4000-8139-138000010010", "9f0e1391-2345-4678-9012-abcdefabcdef",
                "139000010010139000010010aaaaaaaa"):
        assert not FULL_MOBILE.search(f"update {ids} done"), ids
    assert FULL_MOBILE.search("id 5ed16137-1964-4000-8139-0123456789ab, resident 13900001001")

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
    plan_without_contact,
)
from shared.contracts.common import Reporter
from shared.contracts.reports import ReportSubmitted
from shared.logs import PhoneMaskingFilter, log_handler
from tests.privacy import FULL_MOBILE, PhoneScan

pytestmark = pytest.mark.unit

DIGITS = re.compile(r"\d")


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

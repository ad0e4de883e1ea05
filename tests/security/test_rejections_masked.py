"""A resident's contact is masked in rejections (issue 18: wangge.reports.rejected "90 days, readable by every
bridge; neither is erased with the rest"; item 3: "masked in rejections"), attacked on the real broker.

A bridge reading the rejected topic — any bridge, not only the sender — and anyone reading it after the case's
personal data was erased finds the reporter's name, phone and e-mail masked, and no phone number in the text."""
from __future__ import annotations

import asyncio

import orjson
import pytest

from services.intake.bootstrap import build
from shared.contracts import Envelope
from shared.contracts.rejected import MessageRejected
from shared.topics import Topics, ensure_topics
from tests.conftest import drop_schemas
from tests.integration.test_intake_service import report_body
from tests.support import TopicReader, publish

pytestmark = pytest.mark.integration

PHONE, LANDLINE, EMAIL = "13900001001", "0632-3311234", "zhang.san@example.cn"


def test_every_rejection_masks_the_contact_wherever_it_is():
    contact = Envelope.new("contact.recorded", 1, {"case_no": "20261206-0001", "name": "张三丰", "phone": PHONE},
                           source="intake").to_json()
    report = Envelope.new("report.submitted", 1, report_body(
        "x-1", description=f"请回电{PHONE}或{LANDLINE}", reporter={"name": "张三丰", "phone": PHONE, "email": EMAIL}),
        source="hotline").to_json()
    for value in (contact, report, f"not json: call {PHONE}".encode()):
        rejection = MessageRejected.of(value, reason=f"bad: {PHONE}", errors=[{"field": "x", "input": PHONE}],
                                       topic="wangge.reports", partition=0, offset=1, key=b"k", rejected_by="intake")
        text = rejection.model_dump_json()
        assert PHONE not in text and "3311234" not in text and EMAIL not in text and "张三丰" not in text, text
        assert "139****1001" in text
        assert rejection.original_sha256 is not None  # still the message as received, to find it again


async def test_a_bad_report_is_rejected_with_its_reporter_masked(make_settings):
    settings = make_settings()
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings.kafka_bootstrap, topics.fixed())
    service = build(settings, manage_runtime=False)
    await asyncio.wait_for(service.runtime.start(), 60)
    try:
        await service.runtime.wait_until_consuming()
        # A report intake must refuse (no description), carrying a resident's full contact.
        body = report_body("bad-1", source="hotline", description="",
                           address=f"文化路1号 电话{PHONE}",
                           reporter={"name": "张三丰", "phone": PHONE, "email": EMAIL})
        envelope = Envelope.new("report.submitted", 1, body, source="hotline")
        async with TopicReader(settings.kafka_bootstrap, topics.reports_rejected) as rejected:
            await publish(settings.kafka_bootstrap, topics.reports, envelope, key="bad-1", signed_as=None)
            got = await rejected.wait_for(
                lambda m: m.get("data", {}).get("original", {}).get("id") == envelope.id, 30)
        raw = orjson.dumps(got).decode()
        for secret in (PHONE, EMAIL, "张三丰"):
            assert secret not in raw, secret
        reporter = got["data"]["original"]["data"]["reporter"]
        assert reporter == {"name": "张**", "phone": "139****1001", "email": "z***@example.cn"}
        assert "139****1001" in got["data"]["original"]["data"]["address"]
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)
        await drop_schemas(settings)

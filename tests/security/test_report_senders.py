"""A pre-empted report (issue 18, item 2), attacked on the real broker: the same (source, external_id) twice is one
case only when the same sender sent it — the terminal gateway or bridge whose credential's key signed it, never
the envelope's `source`, which any producer writes. A stranger publishing first with a predictable external_id
makes a case of its own (or none, where signatures are required) and the real report is kept."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.intake.bootstrap import build
from shared.auth import sign_update
from shared.contracts import Envelope
from shared.signing import encode_private
from shared.topics import Topics, ensure_topics
from tests.conftest import drop_schemas
from tests.integration.test_intake_service import report_body
from tests.support import TopicReader, grant, publish

pytestmark = pytest.mark.integration

BRIDGE, INSIDER, OWNER = (Ed25519PrivateKey.generate() for _ in range(3))


async def started(settings):
    await ensure_topics(settings.kafka_bootstrap, Topics(settings.topic_prefix).fixed())
    service = build(settings, manage_runtime=False)
    await asyncio.wait_for(service.runtime.start(), 60)
    await service.runtime.wait_until_consuming()
    await grant(settings, service, token="bridge-12345", name="12345热线", role="hotline", signing_key=BRIDGE)
    await grant(settings, service, token="insider-terminal", name="某终端网关", role="terminal", worker_id="W009",
                device_id="SZT-0009", signing_key=INSIDER)
    await grant(settings, service, token="an-owner", name="环卫所", role="owner", owner_code="huanwei",
                signing_key=OWNER)
    return service


async def send(settings, external_id: str, description: str, key: Ed25519PrivateKey | None) -> Envelope:
    envelope = Envelope.new("report.submitted", 1, report_body(external_id, source="hotline", description=description),
                            source="hotline-bridge")
    value = envelope.to_json()
    topic = Topics(settings.topic_prefix).reports
    await publish(settings.kafka_bootstrap, topic, value, key=external_id,
                  headers=sign_update(encode_private(key), value, topic=topic, key=external_id) if key else None,
                  signed_as=None)
    return envelope


@pytest.mark.parametrize("required", [True, False], ids=["production", "development"])
async def test_a_stranger_publishing_first_does_not_drop_the_real_report(make_settings, required):
    settings = make_settings(require_signed_updates=required)
    topics = Topics(settings.topic_prefix)
    service = await started(settings)
    try:
        external_id = f"12345-{uuid.uuid4().int % 100000:05d}"  # the bridge's ids are sequential: predictable
        async with TopicReader(settings.kafka_bootstrap, topics.cases, topics.reports_rejected) as seen:
            unsigned = await send(settings, external_id, "抢先的匿名举报", None)
            if required:
                got = await seen.wait_for(
                    lambda m: m.get("data", {}).get("original", {}).get("id") == unsigned.id, 30)
                assert "not signed" in got["data"]["reason"]
            insider = await send(settings, external_id, "抢先的内部伪造", INSIDER)  # signed, but by another sender
            owner = await send(settings, f"{external_id}-o", "业主不能报案", OWNER)
            got = await seen.wait_for(lambda m: m.get("data", {}).get("original", {}).get("id") == owner.id, 30)
            assert "reports come from terminal or hotline credentials" in got["data"]["reason"]
            await seen.wait_for(lambda m: m.get("type") == "case.reported"
                                and m["data"].get("description") == "抢先的内部伪造", 30)
            # The real report, after them: it becomes a case of its own, not the stranger's.
            await send(settings, external_id, "真实的热线工单", BRIDGE)
            real = await seen.wait_for(lambda m: m.get("type") == "case.reported"
                                       and m["data"].get("description") == "真实的热线工单", 30)
            # Sent again by the same bridge (a retry with a new event id): still the one case.
            await send(settings, external_id, "真实的热线工单", BRIDGE)
            reported = await seen.all_within(3, lambda m: m.get("type") == "case.reported")
        assert insider.id and real["data"]["external_id"] == external_id
        mine = [m for m in reported if m["data"].get("description") == "真实的热线工单"]
        assert len(mine) == 1
        strangers = [m for m in reported if m["data"].get("description") == "抢先的匿名举报"]
        assert len(strangers) == (0 if required else 1)
        assert await service.runtime.pool.fetchval(
            "SELECT count(DISTINCT client) FROM reports WHERE external_id = $1", external_id) == (2 if required else 3)
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)
        await drop_schemas(settings)

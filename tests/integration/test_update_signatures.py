"""An owner's update on Kafka is taken only from that owner: signed with its credential's own Ed25519 key
(production), and a signature, when present, is always checked."""
from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.auth import sign_update
from shared.signing import encode_private
from shared.contracts.tasks import TaskAccepted, TaskProgress
from shared.topics import Topics, ensure_topics
from tests.conftest import drop_schemas
from tests.supervision_cases import open_case, state_of
from tests.supervision_cases import start
from tests.support import TopicReader, grant

pytestmark = pytest.mark.integration


KEYS = {name: Ed25519PrivateKey.generate() for name in ("huanwei", "chengguan", "not-issued")}


async def send_update(settings, case_id: str, event, key: str | None = None, *, headers: list | None = None) -> str:
    """Publish an owner's update, signed with the signing key of `key` (or not at all); returns the update's id."""
    envelope = event.envelope(source=f"owner-{event.owner}", case_id=case_id)
    value = envelope.to_json()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await asyncio.wait_for(producer.start(), 20)
    try:
        await asyncio.wait_for(producer.send_and_wait(
            Topics(settings.topic_prefix).task_updates, value, key=case_id.encode(),
            headers=headers or (sign_update(encode_private(KEYS[key]), value, topic=Topics(settings.topic_prefix)
                                            .task_updates, key=case_id) if key else None)), 20)
    finally:
        await producer.stop()
    return envelope.id


@pytest.mark.parametrize("required", [True, False], ids=["production", "development"])
async def test_only_the_owner_whose_credential_signed_an_update_moves_the_case(make_settings, required):
    settings = make_settings(require_signed_updates=required)
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings.kafka_bootstrap, topics.fixed() + [topics.for_owner("huanwei")])
    service = await start(settings)
    pool = service.runtime.pool
    try:
        await grant(settings, service, token="sig-huanwei", name="环卫所", role="owner", owner_code="huanwei",
                    signing_key=KEYS["huanwei"])
        await grant(settings, service, token="sig-chengguan", name="城管", role="owner", owner_code="chengguan",
                    signing_key=KEYS["chengguan"])
        case_id, case_no = await open_case(settings, pool)
        async with TopicReader(settings.kafka_bootstrap, topics.rejected_for(topics.task_updates)) as rejected:
            forged = await send_update(settings, case_id, TaskAccepted(case_no=case_no, owner="huanwei"), "chengguan")
            got = await rejected.wait_for(lambda m: m["data"]["original"].get("id") == forged, 30)
            assert "signed by owner:chengguan" in got["data"]["reason"]
            bad_key = await send_update(settings, case_id, TaskAccepted(case_no=case_no, owner="huanwei"), "not-issued")
            got = await rejected.wait_for(lambda m: m["data"]["original"].get("id") == bad_key, 30)
            assert "unknown, expired or revoked key" in got["data"]["reason"]
            unsigned = await send_update(settings, case_id, TaskProgress(case_no=case_no, owner="huanwei", note="x"), None)
            if required:
                got = await rejected.wait_for(lambda m: m["data"]["original"].get("id") == unsigned, 30)
                assert "not signed" in got["data"]["reason"]
            await send_update(settings, case_id, TaskAccepted(case_no=case_no, owner="huanwei"), "huanwei")
            await state_of(pool, case_id, "in_progress")
        signed = await pool.fetchval("SELECT count(*) FROM case_events WHERE case_id = $1 AND type = 'case.signed'", case_id)
        assert signed == 1
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)
        await drop_schemas(settings)

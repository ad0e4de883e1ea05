"""Owners' updates signed with a key that never travels (issue 18, item 2), attacked on the real broker.

The first scheme signed an owner's update with an HMAC keyed by the token's SHA-256 — the value that keys
wangge.credentials and every service's credentials table, so whoever read any of them signed as that owner. Now
an owner's system signs with its credential's own Ed25519 key: the registry carries only the public half."""
from __future__ import annotations

import asyncio
import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.auth import token_hash
from shared.contracts.tasks import TaskAccepted
from shared.signing import Signer, encode_public, key_id
from shared.topics import Topics, ensure_topics
from tests.conftest import drop_schemas
from tests.supervision_cases import open_case, state_of
from tests.supervision_cases import start
from tests.integration.test_update_signatures import KEYS, send_update
from tests.support import TopicReader, grant, publish

pytestmark = pytest.mark.integration


def old_scheme(token_sha256: str, value: bytes) -> list[tuple[str, bytes]]:
    """What an attacker who read the registry (or any service's table) could make under the first scheme."""
    digest = bytes.fromhex(token_sha256)
    return [("wangge-credential", token_sha256.encode()),
            ("wangge-signature", hmac.new(digest, value, hashlib.sha256).hexdigest().encode())]


async def send_raw(settings, case_id: str, value: bytes, headers: list[tuple[str, bytes]]) -> None:
    await publish(settings.kafka_bootstrap, Topics(settings.topic_prefix).task_updates, value, key=case_id,
                  headers=headers)


async def test_an_update_forged_with_the_token_hash_or_a_stolen_key_id_is_refused(make_settings):
    settings = make_settings(require_signed_updates=True)
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings.kafka_bootstrap, topics.fixed() + [topics.for_owner("huanwei")])
    service = await start(settings)
    pool = service.runtime.pool
    try:
        await grant(settings, service, token="keyed-huanwei", name="环卫所", role="owner", owner_code="huanwei",
                    signing_key=KEYS["huanwei"])
        # What the registry holds of it: the public key and its id — no secret, and not the token's hash.
        row = await pool.fetchrow("SELECT signing_key_id, signing_public_key FROM credentials WHERE token_sha256 = $1",
                                  token_hash("keyed-huanwei"))
        assert row["signing_key_id"] == key_id(KEYS["huanwei"]) != token_hash("keyed-huanwei")
        assert row["signing_public_key"] == encode_public(KEYS["huanwei"])
        case_id, case_no = await open_case(settings, pool)
        async with TopicReader(settings.kafka_bootstrap, topics.rejected_for(topics.task_updates)) as rejected:
            # The first scheme's HMAC, keyed with the token's hash that the registry and every table hold.
            hashed = TaskAccepted(case_no=case_no, owner="huanwei").envelope(source="owner-huanwei", case_id=case_id)
            await send_raw(settings, case_id, hashed.to_json(),
                           old_scheme(token_hash("keyed-huanwei"), hashed.to_json()))
            got = await rejected.wait_for(lambda m: m.get("data", {}).get("original", {}).get("id") == hashed.id, 30)
            assert "token-hash HMAC, which is no longer accepted" in got["data"]["reason"]
            # The key id read from the registry, signed with a key of the attacker's own.
            posing = TaskAccepted(case_no=case_no, owner="huanwei").envelope(source="owner-huanwei", case_id=case_id)
            await send_raw(settings, case_id, posing.to_json(),
                           Signer(row["signing_key_id"], Ed25519PrivateKey.generate()).headers(
                               posing.to_json(), topic=topics.task_updates, key=case_id))
            got = await rejected.wait_for(lambda m: m.get("data", {}).get("original", {}).get("id") == posing.id, 30)
            assert "the signature does not match the message" in got["data"]["reason"]
        assert await pool.fetchval("SELECT state FROM cases WHERE case_id = $1", case_id) == "dispatched"
        # The owner's own system, with the key printed when its credential was issued, is heard.
        await send_update(settings, case_id, TaskAccepted(case_no=case_no, owner="huanwei"), "huanwei")
        await state_of(pool, case_id, "in_progress")
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)
        await drop_schemas(settings)

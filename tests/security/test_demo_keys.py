"""`./dev up`'s demo machine credentials sign what they publish (issue 18), attacked on the real broker and database.

The demo owners, terminal and hotline had no signing keys, so nothing they published on Kafka could pass where
signatures are required. `seed-demo` now gives each a fixed key derived from its fixed token
(shared.credentials.demo_signing_key; `demo-key TOKEN` prints it): an owner's demo key is heard for its own tasks
only, and the production profile, which refuses demo credentials, refuses their keys too."""
from __future__ import annotations

import asyncio

import pytest

import shared.credentials as credentials_cli
from shared.auth import sign_update, token_hash, update_signer
from shared.contracts.tasks import TaskAccepted
from shared.signing import encode_private, key_id
from shared.topics import Topics, ensure_topics
from tests.conftest import drop_schemas
from tests.supervision_cases import open_case, state_of
from tests.supervision_cases import start
from tests.support import TopicReader, publish

pytestmark = pytest.mark.integration


async def test_demo_owners_sign_their_own_updates_only_and_never_in_production(make_settings, monkeypatch, capsys):
    settings = make_settings(require_signed_updates=True)
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings.kafka_bootstrap, topics.fixed() + [topics.for_owner("huanwei")])
    service = await start(settings)
    pool = service.runtime.pool
    try:
        # ./dev up's step, on this test's topics.
        monkeypatch.setattr(credentials_cli, "get_settings", lambda: settings)
        assert await asyncio.wait_for(asyncio.to_thread(credentials_cli.main, ["seed-demo"]), 120) == 0
        keys = {t: credentials_cli.demo_signing_key(t) for t in
                ("demo-owner-huanwei", "demo-owner-chengguan", "demo-terminal-token", "demo-hotline-token")}

        async def learnt() -> None:
            while await pool.fetchval("SELECT count(*) FROM credentials WHERE token_sha256 = ANY($1) "
                                      "AND signing_key_id IS NOT NULL", [token_hash(t) for t in keys]) < len(keys):
                await asyncio.sleep(0.2)
        await asyncio.wait_for(learnt(), 30)
        for token, key in keys.items():
            assert await pool.fetchval("SELECT signing_key_id FROM credentials WHERE token_sha256 = $1",
                                       token_hash(token)) == key_id(key), token
        # People's and the wall's credentials publish nothing on Kafka: no key.
        assert await pool.fetchval("SELECT signing_key_id FROM credentials WHERE token_sha256 = $1",
                                   token_hash("demo-operator-token")) is None
        # The CLI prints the same key (the README's way to get it).
        capsys.readouterr()
        assert credentials_cli.main(["demo-key", "demo-owner-huanwei"]) == 0
        assert f"signing-key {encode_private(keys['demo-owner-huanwei'])}" in capsys.readouterr().out

        case_id, case_no = await open_case(settings, pool)
        # 城管's demo key signing an update in 环卫所's name: refused.
        forged = TaskAccepted(case_no=case_no, owner="huanwei").envelope(source="owner-huanwei", case_id=case_id)
        value = forged.to_json()
        async with TopicReader(settings.kafka_bootstrap, topics.rejected_for(topics.task_updates)) as rejected:
            await publish(settings.kafka_bootstrap, topics.task_updates, value, key=case_id, signed_as=None,
                          headers=sign_update(encode_private(keys["demo-owner-chengguan"]), value,
                                              topic=topics.task_updates, key=case_id))
            got = await rejected.wait_for(lambda m: m.get("data", {}).get("original", {}).get("id") == forged.id, 30)
        assert "signed by owner:chengguan" in got["data"]["reason"]
        assert await pool.fetchval("SELECT state FROM cases WHERE case_id = $1", case_id) == "dispatched"
        # 环卫所's own demo key: heard.
        own = TaskAccepted(case_no=case_no, owner="huanwei").envelope(source="owner-huanwei", case_id=case_id)
        value = own.to_json()
        await publish(settings.kafka_bootstrap, topics.task_updates, value, key=case_id, signed_as=None,
                      headers=sign_update(encode_private(keys["demo-owner-huanwei"]), value,
                                          topic=topics.task_updates, key=case_id))
        await state_of(pool, case_id, "in_progress", 30)

        # The production profile refuses the demo credentials, and so their keys, whoever computes them.
        headers = dict(sign_update(encode_private(keys["demo-owner-huanwei"]), value, topic=topics.task_updates,
                                   key=case_id))
        async with pool.acquire() as conn:
            assert (await update_signer(conn, headers, value, production=False, topic=topics.task_updates,
                                        key=case_id)).owner_code == "huanwei"
            assert "unknown, expired or revoked key" in await update_signer(
                conn, headers, value, production=True, topic=topics.task_updates, key=case_id)
        production = settings.model_copy(update={"profile": "production"})
        monkeypatch.setattr(credentials_cli, "get_settings", lambda: production)
        assert credentials_cli.main(["demo-key", "demo-owner-huanwei"]) == 1
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)
        await drop_schemas(settings)

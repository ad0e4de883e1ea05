"""Revocation that always wins: the registry's order, not the publisher's clock; future-dated credentials
refused; chosen tokens refused in production; open event streams closed at revocation and expiry."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta

import httpx
import orjson
import pytest

from shared.auth import token_hash
from shared.clock import now
from shared.contracts.credentials import CredentialRevoked
from shared.credentials import issued, publish as publish_credentials
from shared.settings import REPO_ROOT
from shared.topics import Topics
from tests.live_running import OPERATOR, running_live
from tests.integration.test_open311 import client, intake  # noqa: F401 (the fixture)
from tests.support import grant, publish

pytestmark = pytest.mark.integration


async def _as_operator(service, token: str) -> int:
    """What intake answers this token on an operator's action (404: the credential is good, the case unknown)."""
    async with client(service) as http:
        answer = await http.post("/api/v1/cases/19990101-0001/reject", json={"reason": "探测"},
                                 headers={"Authorization": f"Bearer {token}"})
    return answer.status_code


async def _publish_dated(settings, event, occurred_at) -> None:
    """A credential event as a publisher with its own clock (or a forger) would put it on the registry."""
    envelope = event.envelope(source="credentials").model_copy(update={"occurred_at": occurred_at})
    await publish(settings.kafka_bootstrap, Topics(settings.topic_prefix).credentials, envelope, key=event.token_sha256)


async def test_a_credential_dated_in_the_future_is_refused(intake, isolated):
    forged = "future-dated-admin-token"
    await _publish_dated(isolated, issued(forged, name="来自未来", role="admin"), now() + timedelta(days=365))
    # A later credential learnt proves the forged one (before it on the one partition) was read.
    await grant(isolated, intake, token="after-the-future-one", name="值班员", role="operator")
    assert await _as_operator(intake, "after-the-future-one") == 404
    assert await _as_operator(intake, forged) == 401
    assert not await intake.runtime.pool.fetchval("SELECT count(*) FROM credentials WHERE token_sha256 = $1",
                                                  token_hash(forged))


async def test_a_credential_dated_ahead_of_the_revocation_is_still_revoked(intake, isolated):
    # Issued by a publisher whose clock runs a few minutes ahead (within the skew allowed): it works…
    ahead = "clock-ahead-operator-token"
    await _publish_dated(isolated, issued(ahead, name="快钟值班员", role="operator"), now() + timedelta(minutes=4))

    async def status_becomes(expected: int) -> None:
        while await _as_operator(intake, ahead) != expected:
            await asyncio.sleep(0.1)
    await asyncio.wait_for(status_becomes(404), 30)
    # …and an administrator's revocation, dated by a correct clock (earlier than the issue), wins.
    await publish_credentials(isolated, [CredentialRevoked(token_sha256=token_hash(ahead), reason="离职")])
    await asyncio.wait_for(status_becomes(401), 30)


def test_issue_with_a_chosen_token_is_refused_in_production():
    env = {**os.environ, "WANGGE_PROFILE": "production", "WANGGE_KAFKA_BOOTSTRAP": "127.0.0.1:9"}
    answer = subprocess.run([sys.executable, "-m", "shared.credentials", "issue", "--name", "管理员", "--role",
                             "admin", "--token", "my-easy-admin-token"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert answer.returncode == 2 and "refuses --token" in answer.stderr
    assert "my-easy-admin-token" not in answer.stdout


async def _stream_until_closed(base: str, token: str, opened: asyncio.Event) -> list[tuple[bytes, bytes]]:
    """Read the event stream until the server ends it; the (event, data) pairs seen."""
    seen: list[tuple[bytes, bytes]] = []
    async with httpx.AsyncClient(timeout=None) as http:
        async with http.stream("GET", f"{base}/api/v1/live/events", headers={"Authorization": f"Bearer {token}"}) as answer:
            assert answer.status_code == 200
            buffer = b""
            async for chunk in answer.aiter_bytes():
                buffer += chunk
                while b"\n\n" in buffer:
                    block, buffer = buffer.split(b"\n\n", 1)
                    lines = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line)
                    if b"event" in lines:
                        seen.append((lines[b"event"], lines.get(b"data", b"")))
                        if lines[b"event"] == b"hello":
                            opened.set()
    return seen


async def test_an_open_event_stream_does_not_outlive_its_revoked_credential(isolated):
    async with running_live(isolated) as base:
        opened = asyncio.Event()
        reader = asyncio.create_task(_stream_until_closed(base, OPERATOR, opened))
        await asyncio.wait_for(opened.wait(), 20)
        await asyncio.sleep(1.5)
        assert not reader.done()  # a valid credential keeps its stream open
        await publish_credentials(isolated, [CredentialRevoked(token_sha256=token_hash(OPERATOR), reason="被盗")])
        seen = await asyncio.wait_for(reader, 15)
        async with httpx.AsyncClient() as http:
            again = await http.get(f"{base}/api/v1/live/events", headers={"Authorization": f"Bearer {OPERATOR}"})
    assert seen[0][0] == b"hello" and seen[-1][0] == b"closed"
    assert "revoked" in orjson.loads(seen[-1][1])["reason"]
    assert again.status_code == 401


async def test_an_open_event_stream_ends_when_its_credential_expires(isolated):
    async with running_live(isolated, grant_tokens=False) as base:
        token = "short-lived-screen-token"
        await publish_credentials(isolated, [issued(token, name="大屏", role="operator",
                                                    expires_at=now() + timedelta(seconds=6))])
        opened = asyncio.Event()

        async def until_open() -> list:
            while True:  # the credential reaches the live process within a second or two
                try:
                    return await _stream_until_closed(base, token, opened)
                except AssertionError:
                    await asyncio.sleep(0.2)
        reader = asyncio.create_task(until_open())
        await asyncio.wait_for(opened.wait(), 5)
        seen = await asyncio.wait_for(reader, 20)
    assert seen[-1][0] == b"closed"

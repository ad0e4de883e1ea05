"""A report's idempotency over HTTP is its credential's, never its name's (issue 18: "Over HTTP the scope is the
credential's name, which is not unique"), attacked on the real service and database.

The credentials CLI takes any --name, so two machines (or a machine and a person) can share one. Scoped by name, the
second to send an external_id the first used got the first's case back (its number, state and place: another
client's report) and its own report was dropped. Now each admin-issued credential is its own scope; a person's
sessions share their account's; and intake migration 010 moved the reports stored before onto the new scopes."""
from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
import pytest

from services.intake.bootstrap import build
from shared.auth import credential_id, token_hash
from shared.clock import now
from shared.contracts.credentials import CredentialIssued
from shared.settings import REPO_ROOT
from tests.integration.test_intake_service import report_body
from tests.support import grant, publish

pytestmark = pytest.mark.integration

MIGRATION_010 = REPO_ROOT / "services" / "intake" / "migrations" / "010_report_sender_scope.sql"


@pytest.fixture
async def intake(isolated):
    service = build(isolated, manage_runtime=False)
    await asyncio.wait_for(service.runtime.start(), 60)
    try:
        await service.runtime.wait_until_consuming()
        yield service
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)


def as_(service, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://intake",
                             headers={"Authorization": f"Bearer {token}"}, timeout=20)


async def post(service, token: str, external_id: str, **fields) -> tuple[int, dict]:
    async with as_(service, token) as http:
        response = await http.post("/api/v1/reports", json=report_body(external_id, **fields))
    assert response.status_code in (200, 201), response.text
    return response.status_code, response.json()


async def session(settings, service, token: str, *, username: str, role: str, **fields) -> None:
    """A person's session as supervision issues it at sign-in (signed with supervision's key), learnt by intake."""
    event = CredentialIssued(token_sha256=token_hash(token), name=username, role=role,
                             expires_at=now() + timedelta(hours=8), **fields)
    await publish(settings.kafka_bootstrap, service.runtime.topics.credentials, event.envelope(source="supervision"),
                  key=event.token_sha256, signed_as="supervision")

    async def learnt() -> None:
        while not await service.runtime.pool.fetchval(
                "SELECT issuer = 'supervision' FROM credentials WHERE token_sha256 = $1", token_hash(token)):
            await asyncio.sleep(0.1)
    await asyncio.wait_for(learnt(), 30)


async def test_two_credentials_sharing_a_name_never_share_a_report(intake, isolated):
    # Two hotline credentials the admin issued under one name (two call centres, or one's replacement).
    for token in ("hotline-a", "hotline-b"):
        await grant(isolated, intake, token=token, name="12345热线", role="hotline")
    external_id = f"12345-{uuid.uuid4().int % 100000:05d}"  # sequential at the source: predictable
    first, a = await post(intake, "hotline-a", external_id, source="hotline", description="甲热线的工单")
    # The other credential with the same name and the same external_id: a case of its own, not a's case back.
    second, b = await post(intake, "hotline-b", external_id, source="hotline", description="乙热线的工单")
    assert (first, second) == (201, 201) and not b["duplicate"]
    assert b["case_id"] != a["case_id"] and b["case_no"] != a["case_no"]
    # Each one's retry is its own case again, once.
    again_a, a2 = await post(intake, "hotline-a", external_id, source="hotline", description="甲热线的工单")
    again_b, b2 = await post(intake, "hotline-b", external_id, source="hotline", description="乙热线的工单")
    assert (again_a, a2["case_id"], again_b, b2["case_id"]) == (200, a["case_id"], 200, b["case_id"])
    scopes = {r["client"] for r in await intake.runtime.pool.fetch(
        "SELECT client FROM reports WHERE external_id = $1", external_id)}
    assert scopes == {f"credential:{credential_id(token_hash(t))}" for t in ("hotline-a", "hotline-b")}
    assert not any("12345热线" in s for s in scopes)  # the name is no part of it


async def test_a_persons_sessions_are_one_sender_and_a_machine_named_like_them_is_another(intake, isolated):
    # Coordinator w001 signs in on two phones (two sessions supervision issued); an admin-issued terminal credential
    # carries the same name and role — deliberately or not.
    for token in ("w001-morning", "w001-evening"):
        await session(isolated, intake, token, username="w001", role="terminal", worker_id="W001")
    await grant(isolated, intake, token="machine-w001", name="w001", role="terminal", worker_id="W001",
                device_id="SZT-0001")
    external_id = f"grid-{uuid.uuid4().hex[:8]}"
    status, first = await post(intake, "w001-morning", external_id)
    # Sent again after signing in again (the phone's outbox): the person's one case.
    again, retried = await post(intake, "w001-evening", external_id)
    assert (status, again, retried["case_id"], retried["duplicate"]) == (201, 200, first["case_id"], True)
    # The machine with the person's name gets nothing of theirs: a case of its own.
    machine, own = await post(intake, "machine-w001", external_id)
    assert machine == 201 and own["case_id"] != first["case_id"] and not own["duplicate"]


async def test_the_upgrade_moves_stored_reports_to_their_credentials_scope(intake, isolated):
    """Intake migration 010 on reports stored with the old scope ('<role>:<name>'): a name one credential had moves
    to that credential (its retry after the upgrade still finds its case); a name two shared stays, matching no
    new scope, so neither is ever handed the other's case."""
    await grant(isolated, intake, token="old-gateway", name="旧终端网关", role="terminal", worker_id="W002",
                device_id="SZT-0002")
    for token in ("twin-a", "twin-b"):
        await grant(isolated, intake, token=token, name="同名热线", role="hotline")
    pool = intake.runtime.pool
    unique_id, twin_id = f"old-{uuid.uuid4().hex[:6]}", f"twin-{uuid.uuid4().hex[:6]}"
    _, old = await post(intake, "old-gateway", unique_id)
    _, twin = await post(intake, "twin-a", twin_id, source="hotline")
    # As they were stored before the upgrade.
    await pool.execute("UPDATE reports SET client = 'terminal:旧终端网关' WHERE external_id = $1", unique_id)
    await pool.execute("UPDATE reports SET client = 'hotline:同名热线' WHERE external_id = $1", twin_id)
    async with pool.acquire() as conn:
        await conn.execute(MIGRATION_010.read_text(encoding="utf-8"))
    assert await pool.fetchval("SELECT client FROM reports WHERE external_id = $1", unique_id) \
        == f"credential:{credential_id(token_hash('old-gateway'))}"
    assert await pool.fetchval("SELECT client FROM reports WHERE external_id = $1", twin_id) == "hotline:同名热线"
    # The gateway's retry after the upgrade: its case.
    status, retried = await post(intake, "old-gateway", unique_id)
    assert (status, retried["case_id"]) == (200, old["case_id"])
    # Either twin re-sending: a case of its own, never the stored one handed to the wrong twin.
    status, other = await post(intake, "twin-b", twin_id, source="hotline")
    assert status == 201 and other["case_id"] != twin["case_id"]

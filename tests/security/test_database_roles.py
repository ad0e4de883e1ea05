"""One PostgreSQL role per service: each reads and writes its own schema only, and the production profile refuses
to start a service whose role reaches further. Attacks on the real database (deploy/local/postgres.sh makes the
roles wangge_<service>); each must fail."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from services.intake.bootstrap import build as build_intake
from shared.db import PLUMBING_SQL, SchemaNotMigrated, migrate
from shared.db_roles import database_problems, grant_schema, schema_access_problems
from shared.settings import REPO_ROOT, Settings
from tests.integration.test_intake_service import TERMINAL_TOKEN, report_body
from tests.support import grant

pytestmark = pytest.mark.integration

A_PHONE = "13900001001"


def as_role(url: str, role: str) -> str:
    """The owner's URL with another user (local trust auth: no password)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.netloc.rsplit('@', 1)[-1]}"))


def folders(service: str) -> list:
    return [PLUMBING_SQL, REPO_ROOT / "services" / service / "migrations"]


@pytest.fixture
async def roles(isolated: Settings) -> Settings:
    """intake's and notify's schemas migrated by the owner, each granted to its own role; a resident's contact kept."""
    settings = isolated.model_copy(update={
        "intake_database_url": as_role(isolated.database_url, "wangge_intake"),
        "notify_database_url": as_role(isolated.database_url, "wangge_notify")})
    owner = await asyncpg.connect(isolated.database_url)
    try:
        for service in ("intake", "notify"):
            await migrate(owner, settings.schema(service), folders(service))
            await grant_schema(owner, settings.schema(service), settings.service_role(service))
        await owner.execute(f'INSERT INTO "{settings.schema("notify")}".contacts '
                            "(case_id, case_no, name, phone, phone_norm, source_event_id) "
                            "VALUES ('c-roles', '20991231-0001', '李先生', $1, $1, 'e-roles')", A_PHONE)
    finally:
        await owner.close()
    return settings


async def test_the_intake_role_cannot_read_notifys_contacts(roles: Settings):
    contacts = f'"{roles.schema("notify")}".contacts'
    intake = await asyncpg.connect(roles.intake_database_url)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await intake.fetch(f"SELECT phone FROM {contacts}")
        # Nor by becoming notify's role or the owner, nor by granting itself the schema.
        for become in ("SET ROLE wangge_notify", "SET ROLE wangge",
                       f'GRANT USAGE ON SCHEMA "{roles.schema("notify")}" TO wangge_intake'):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await intake.execute(become)
        # Nor by changing its own schema (a view or function over the other's tables): no DDL, no new schema.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await intake.execute(f'CREATE VIEW "{roles.schema("intake")}".peek AS SELECT 1')
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await intake.execute(f'CREATE SCHEMA "{roles.schema_prefix}peek"')
        # Its own schema it reads and writes.
        assert await intake.fetchval(f'SELECT count(*) FROM "{roles.schema("intake")}".outbox') == 0
    finally:
        await intake.close()
    notify = await asyncpg.connect(roles.notify_database_url)
    try:
        assert await notify.fetchval(f"SELECT phone FROM {contacts}") == A_PHONE
    finally:
        await notify.close()


async def test_a_services_role_may_not_migrate_and_says_who_must(roles: Settings):
    intake = await asyncpg.connect(roles.intake_database_url)
    try:
        # Its schema, migrated by the owner: nothing to do.
        assert await migrate(intake, roles.schema("intake"), folders("intake")) == []
        # A schema the owner has not migrated: refused with what to run, and nothing created.
        with pytest.raises(SchemaNotMigrated, match="shared.migrate"):
            await migrate(intake, roles.schema("routing"), folders("routing"))
        assert not await intake.fetchval("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                                         roles.schema("routing"))
    finally:
        await intake.close()


async def test_the_production_check_names_every_role_that_reaches_another_schema(roles: Settings):
    # Its own role, its own schema: nothing to say.
    assert await database_problems(roles, "intake") == []
    # The owner (a superuser) for intake: refused, naming the setting.
    as_owner = roles.model_copy(update={"intake_database_url": roles.database_url})
    [problem] = await database_problems(as_owner, "intake")
    assert "WANGGE_INTAKE_DATABASE_URL" in problem and "superuser" in problem
    # A role that was granted notify's schema too: refused, naming the schema and the fix.
    owner = await asyncpg.connect(roles.database_url)
    try:
        await owner.execute(f'GRANT USAGE ON SCHEMA "{roles.schema("notify")}" TO wangge_intake')
        intake = await asyncpg.connect(roles.intake_database_url)
        try:
            [problem] = await schema_access_problems(intake, roles, "intake")
        finally:
            await intake.close()
    finally:
        await owner.execute(f'REVOKE ALL ON SCHEMA "{roles.schema("notify")}" FROM wangge_intake')
        await owner.close()
    assert roles.schema("notify") in problem and "REVOKE" in problem


def test_intake_refuses_to_start_in_production_as_the_owner(base_settings: Settings):
    env = {**os.environ, "WANGGE_PROFILE": "production", "WANGGE_KAFKA_BOOTSTRAP": "127.0.0.1:9",
           "WANGGE_INTAKE_DATABASE_URL": base_settings.database_url}
    started = subprocess.run([sys.executable, "-m", "services.intake", "--port", "9"], cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 2, started.stderr
    assert "production profile refuses to start" in started.stderr
    assert "WANGGE_INTAKE_DATABASE_URL" in started.stderr and "superuser" in started.stderr


async def test_intake_works_as_its_own_role(roles: Settings):
    service = build_intake(roles, manage_runtime=False)
    await asyncio.wait_for(service.runtime.start(), 60)
    try:
        assert await service.runtime.pool.fetchval("SELECT current_user") == "wangge_intake"
        await service.runtime.wait_until_consuming()
        await grant(roles, service, token=TERMINAL_TOKEN, name="网格员001终端", role="terminal",
                    worker_id="W001", device_id="SZT-0001")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://intake",
                                     headers={"Authorization": f"Bearer {TERMINAL_TOKEN}"}, timeout=10) as http:
            created = await http.post("/api/v1/reports", json=report_body("SZT-0001-roles"))
        assert created.status_code == 201, created.text
    finally:
        await service.runtime.stop()

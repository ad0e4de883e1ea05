"""The containers' PostgreSQL (deploy/compose/patroni.yml, booted by Patroni here: tests/integration/
test_patroni_config.py's cluster) lets no one in over the network without a password: every role — Patroni's
superuser, its replication user, the owner, a service's — with a wrong password or none is refused on both members,
the primary and the standby alike (no `trust` line, as the local development cluster has)."""
from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.integration.test_patroni_config import PASSWORDS, Cluster, cluster  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROLES = ("postgres", "replicator", "wangge", "wangge_intake", "wangge_notify")


async def refused(port: int, role: str, password: str | None) -> Exception:
    try:
        conn = await asyncio.wait_for(asyncpg.connect(host="127.0.0.1", port=port, user=role, password=password,
                                                      database="wangge"), 30)
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError,
            asyncpg.InterfaceError) as exc:
        return exc
    await conn.close()
    raise AssertionError(f"{role} got in on {port} with password {password!r}")


async def test_no_role_gets_in_without_its_password_on_either_member(cluster: Cluster):
    for port in cluster.pg_ports:
        for role in ROLES:
            wrong = await refused(port, role, "not-the-password")
            assert isinstance(wrong, asyncpg.InvalidPasswordError), (port, role, wrong)
            await refused(port, role, None)
            await refused(port, role, "")
    # The right one still opens the door, so the refusals above are the passwords' doing.
    conn = await asyncio.wait_for(asyncpg.connect(cluster.url("wangge_intake", PASSWORDS["intake"])), 30)
    await conn.close()

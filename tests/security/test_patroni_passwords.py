"""The containers' PostgreSQL (deploy/compose/patroni.yml, booted by Patroni here: tests/integration/
test_patroni_config.py's cluster) lets no one in over the network without a password: every role — Patroni's
superuser, its replication user, the owner, a service's — with a wrong password or none is refused on both members,
the primary and the standby alike (no `trust` line, as the local development cluster has). Nor does Patroni's REST
API restart, hand over or reconfigure the cluster for a caller without its user's password; the probes' GETs stay
open."""
from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from tests.integration.test_patroni_config import (  # noqa: F401  (cluster: the fixture)
    PASSWORDS, RESTAPI_PASSWORD, Cluster, cluster,
)

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


# Patroni's unsafe calls: each would restart a member, move the primary or change the cluster's settings.
UNSAFE = [("POST", "/restart", {}), ("POST", "/switchover", {"leader": "postgres-1"}),
          ("POST", "/failover", {"candidate": "postgres-2"}), ("POST", "/reload", None),
          ("PATCH", "/config", {"synchronous_mode": False}), ("PUT", "/config", {"synchronous_mode": False}),
          ("POST", "/reinitialize", {})]


async def test_the_rest_api_changes_nothing_for_a_caller_without_its_password(cluster: Cluster):
    leader_before = cluster.leader()
    async with httpx.AsyncClient(timeout=10) as http:
        for port in cluster.rest_ports:
            base = f"http://127.0.0.1:{port}"
            for method, path, body in UNSAFE:
                for auth in (None, ("patroni", "not-the-password"), ("postgres", RESTAPI_PASSWORD)):
                    answer = await http.request(method, base + path, json=body, auth=auth)
                    assert answer.status_code == 401, (port, method, path, auth, answer.status_code, answer.text)
            # What the probes ask stays open.
            assert (await http.get(f"{base}/health")).status_code == 200
            assert (await http.get(f"{base}/liveness")).status_code == 200
        # Nothing moved: the same leader, still synchronous.
        config = (await http.get(f"http://127.0.0.1:{cluster.rest_ports[0]}/config")).json()
        # The user and its password are heard (a reload changes nothing): the refusals above are the password's doing.
        heard = await http.post(f"http://127.0.0.1:{cluster.rest_ports[0]}/reload", auth=("patroni", RESTAPI_PASSWORD))
        assert heard.status_code in (200, 202), heard.text
    assert config["synchronous_mode"] is True
    assert cluster.leader()["name"] == leader_before["name"] and cluster.pair()

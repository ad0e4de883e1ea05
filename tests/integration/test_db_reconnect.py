"""A service's pool (shared/db.py) finds a server that accepts writes through a URL listing several, and replaces
connections the server cut, by itself — what it needs after a failover (tests/e2e/test_pg_failover.py kills a real
primary; here the suite's one server is enough)."""
from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from shared.db import create_pool
from shared.errors import TRANSIENT_DB_ERRORS
from tests.support import free_port

pytestmark = pytest.mark.integration


def _with_dead_host_first(dsn: str, port: int) -> str:
    """The suite's URL with a member that does not answer listed before the real server."""
    scheme, rest = dsn.split("://", 1)
    user, hostpart = rest.rsplit("@", 1)
    return f"{scheme}://{user}@127.0.0.1:{port},{hostpart}" + ("&" if "?" in hostpart else "?") + \
        "target_session_attrs=read-write"


async def test_a_url_listing_a_dead_member_first_reaches_the_one_that_accepts_writes(base_settings):
    schema = f"r{uuid.uuid4().hex[:8]}"
    pool = await asyncio.wait_for(create_pool(_with_dead_host_first(base_settings.database_url, free_port()), schema), 30)
    try:
        assert await pool.fetchval("SELECT NOT pg_is_in_recovery()") is True
        assert await pool.fetchval("SHOW transaction_read_only") == "off"
    finally:
        await asyncio.wait_for(pool.close(), 10)


async def test_connections_the_server_cut_are_replaced_on_the_next_acquire(base_settings):
    """Every connection of the pool terminated by the server (as a dying primary cuts them): the next queries run
    on new connections, with no restart of anything."""
    schema = f"r{uuid.uuid4().hex[:8]}"
    pool = await asyncio.wait_for(create_pool(base_settings.database_url, schema, min_size=3, max_size=3), 30)
    admin = await asyncpg.connect(base_settings.database_url, timeout=10)
    try:
        before = set(await asyncio.wait_for(asyncio.gather(*(pool.fetchval("SELECT pg_backend_pid()") for _ in range(3))), 30))
        cut = await admin.fetchval("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                   "WHERE pid = ANY($1::int[])) t", list(before), timeout=10)
        assert cut == len(before)

        failures = []

        async def works() -> int:
            while True:
                try:
                    return await pool.fetchval("SELECT pg_backend_pid()")
                except TRANSIENT_DB_ERRORS as exc:  # a cut the client had not read yet: the services retry these
                    failures.append(exc)
                    await asyncio.sleep(0.1)
        after = {await asyncio.wait_for(works(), 30) for _ in range(3)}
        assert after and not (after & before)
        assert len(failures) <= len(before)  # at most once per cut connection, then a new one
    finally:
        await admin.close(timeout=5)
        await asyncio.wait_for(pool.close(), 10)

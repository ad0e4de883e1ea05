"""The benchmarks' CPU accounting of PostgreSQL (bench/support.py) counts the work a real load did, backends that
exit during the run included — issue 17 found it reading 0.02 ms a case while PostgreSQL did most of the work.

A real short load on the suite's PostgreSQL: connections that work and close while the accounting runs (as asyncpg
closes a pooled connection after 50,000 queries), and one that worked long before and closes during it. What each
backend used is read from its own /proc/PID/stat just before it closes; the accounting must find at least that."""
from __future__ import annotations

import asyncio
import os
import time
import uuid

import asyncpg
import pytest

from bench.support import cpu_by_component, postmaster_pid, read_stat, stack_roots

pytestmark = pytest.mark.integration

TICK = os.sysconf("SC_CLK_TCK")
# A few hundred ms of one backend's CPU on this machine: rows written (WAL, a unique index), then a sort.
WRITE = "INSERT INTO {table} (id, payload) SELECT g + $1::bigint, md5(g::text) FROM generate_series(1, 60000) g"
SORT = "SELECT count(DISTINCT md5(payload || id)) FROM {table}"


def backend_ticks(pid: int) -> int:
    proc = read_stat(pid)
    assert proc is not None, f"backend {pid} not in /proc: the suite's PostgreSQL must run on this machine"
    return proc.own


async def work(conn: asyncpg.Connection, table: str, offset: int) -> None:
    await asyncio.wait_for(conn.execute(WRITE.format(table=table), offset), 60)
    await asyncio.wait_for(conn.fetchval(SORT.format(table=table)), 60)


async def wait_gone(pid: int) -> None:
    """Until the postmaster has reaped the backend (its CPU moves to the postmaster's cutime/cstime)."""
    deadline = time.monotonic() + 10
    while read_stat(pid) is not None:
        assert time.monotonic() < deadline, f"backend {pid} still in /proc 10 s after its connection closed"
        await asyncio.sleep(0.05)


async def test_postgresql_cpu_of_a_short_load_is_counted_with_the_backends_that_exited(base_settings):
    dsn = base_settings.database_url
    schema = f"bench_acct_{uuid.uuid4().hex[:8]}"
    table = f'"{schema}".t'
    owner = await asyncio.wait_for(asyncpg.connect(dsn), 10)
    await owner.execute(f'CREATE SCHEMA "{schema}"; CREATE TABLE {table} (id bigint PRIMARY KEY, payload text)')
    try:
        # A connection that has worked for a while before the first reading and closes during the run: an
        # accounting of live processes only loses its whole life, and the difference goes below zero.
        old = await asyncio.wait_for(asyncpg.connect(dsn), 10)
        old_pid = old.get_server_pid()
        await work(old, table, 0)
        await work(old, table, 100_000)
        lived_before = backend_ticks(old_pid)

        before = cpu_by_component()
        assert "postgresql" in before, f"the accounting found no PostgreSQL serving {dsn}"
        started = time.monotonic()
        await work(old, table, 200_000)
        truth = backend_ticks(old_pid) - lived_before
        await old.close()
        exited = [old_pid]
        for n in range(4):  # short connections, each working and closing during the run
            conn = await asyncio.wait_for(asyncpg.connect(dsn), 10)
            pid = conn.get_server_pid()
            await work(conn, table, 1_000_000 * (n + 1))
            truth += backend_ticks(pid)
            await conn.close()
            exited.append(pid)
        for pid in exited:
            await wait_gone(pid)
        after = cpu_by_component()
        elapsed = time.monotonic() - started
    finally:
        await owner.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await owner.close()

    counted = after["postgresql"] - before["postgresql"]
    did = truth / TICK
    assert lived_before / TICK > 0.2, f"the load before the run was too light to tell ({lived_before / TICK:.2f} s)"
    assert did > 0.5, f"the load was too light to tell ({did:.2f} s of backend CPU)"
    # At least what the backends that exited used (their CPU read at close; the background processes add to it).
    assert counted >= 0.9 * did, f"PostgreSQL counted {counted:.2f} s; its backends used {did:.2f} s before exiting"
    # And not another cluster's work on top: no more than the machine's cores could do in the time.
    assert counted <= (os.cpu_count() or 1) * elapsed + 0.1


async def test_the_accounting_reads_the_postmaster_that_serves_the_dsn_and_no_other(base_settings):
    conn = await asyncio.wait_for(asyncpg.connect(base_settings.database_url), 10)
    try:
        backend = read_stat(conn.get_server_pid())
    finally:
        await conn.close()
    assert backend is not None
    # Other stacks' clusters run on this machine too: the root is our backend's parent, the postmaster.
    assert postmaster_pid(base_settings.database_url) == backend.ppid
    assert stack_roots(base_settings)["postgresql"] == backend.ppid

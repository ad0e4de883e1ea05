"""What a unit of work costs PostgreSQL: its batch's outbox rows in one statement, in the order they were emitted, and
its connection handed back without asyncpg's reset query — while any other use of the pool is still reset."""
from __future__ import annotations

import asyncio
import uuid
from typing import AsyncIterator

import asyncpg
import pytest

from shared.contracts.cases import CaseRejected
from shared.db import PLUMBING_SQL, STATEMENT_LIFETIME_SECONDS, create_pool, migrate
from shared.settings import Settings
from shared.uow import UnitOfWork
from tests.conftest import drop_schemas

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(make_settings) -> AsyncIterator[tuple[asyncpg.Pool, list[str]]]:
    """A pool of ONE connection on a schema with the plumbing tables, and every statement sent on that connection."""
    settings: Settings = make_settings()
    schema = f"{settings.schema_prefix}uow"
    pool = await create_pool(settings.database_url, schema, min_size=1, max_size=1)
    sent: list[str] = []
    try:
        async with pool.acquire() as conn:
            await asyncio.wait_for(migrate(conn, schema, [PLUMBING_SQL]), 60)
            conn.add_query_logger(lambda logged: sent.append(" ".join(logged.query.split())))
        yield pool, sent
    finally:
        await asyncio.wait_for(pool.close(), 30)
        await drop_schemas(settings)


def _envelope(case_id: str | None, n: int):
    return CaseRejected(case_no="20261127-0001", reason=f"r{n}").envelope(source="test", case_id=case_id)


async def test_a_batch_of_events_goes_into_the_outbox_in_one_statement_in_the_order_emitted(pool):
    pool, sent = pool
    # Keys interleaved, one without a key, two topics: the order of the whole batch is what the relay sends in.
    emitted = []
    async with UnitOfWork(pool) as uow:
        for n in range(300):
            envelope = _envelope(None if n == 150 else f"case-{n % 7}", n)  # no case: no key
            topic = "t.cases" if n % 3 else "t.tasks.huanwei"
            uow.emit(topic, envelope)
            emitted.append((topic, envelope.case_id, envelope.id, envelope.type, envelope.to_json()))
        sent.clear()
        await asyncio.wait_for(uow.commit(), 30)
    inserts = [q for q in sent if q.startswith("INSERT INTO outbox")]
    assert len(inserts) == 1, sent
    rows = await asyncio.wait_for(
        pool.fetch("SELECT topic, key, event_id, event_type, payload FROM outbox ORDER BY seq"), 30)
    got = [tuple(r) for r in rows]
    want = [(t, k, i, ty, bytes(p)) for t, k, i, ty, p in emitted]
    first = next((n for n, (a, b) in enumerate(zip(got, want)) if a != b), None)
    assert first is None and len(got) == len(want), (first, got[first or 0][:4], want[first or 0][:4])


async def test_a_unit_of_work_hands_its_connection_back_without_a_reset_query(pool):
    pool, sent = pool
    sent.clear()
    async with UnitOfWork(pool) as uow:
        await uow.conn.execute("SET LOCAL statement_timeout = '5s'")  # ends with the transaction: no reset needed
        assert await uow.claim("test:uow", str(uuid.uuid4()))
        await asyncio.wait_for(uow.commit(), 30)
    async with UnitOfWork(pool) as uow:
        await uow.conn.fetchval("SELECT 1")  # rolled back, not committed: no reset either
    assert not [q for q in sent if "RESET ALL" in q], sent
    assert await asyncio.wait_for(pool.fetchval("SHOW statement_timeout"), 30) == "0"  # SET LOCAL ended with it


async def test_any_other_use_of_the_pool_is_still_reset(pool):
    pool, sent = pool
    async with pool.acquire() as conn:
        await conn.execute("SET application_name = 'left behind'")
    async with UnitOfWork(pool) as uow:
        assert await uow.conn.fetchval("SHOW application_name") != "left behind"
    sent.clear()
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
    assert any("RESET ALL" in q for q in sent), sent


async def test_the_pools_own_reads_hand_their_connection_back_without_a_reset_query(pool):
    # A credential looked up for each HTTP request: one read, no session state left, so no reset's round trip.
    pool, sent = pool
    sent.clear()
    assert await pool.fetchval("SELECT 1") == 1
    assert (await pool.fetchrow("SELECT 2 AS two"))["two"] == 2
    assert [r["n"] for r in await pool.fetch("SELECT generate_series(1, 3) AS n")] == [1, 2, 3]
    assert not [q for q in sent if "RESET ALL" in q], sent
    # A read that fails is reset as before, and pool.execute always is.
    with pytest.raises(asyncpg.PostgresError):
        await pool.fetchval("SELECT 1/0")
    assert any("RESET ALL" in q for q in sent), sent
    sent.clear()
    await pool.execute("SET application_name = 'left behind'")
    assert any("RESET ALL" in q for q in sent), sent
    assert await pool.fetchval("SHOW application_name") != "left behind"


async def test_a_unit_of_works_statements_are_planned_once_and_other_reads_for_their_arguments(pool):
    # A batch's lookups by an array of ids: PostgreSQL's default plans them anew on every call (the array's length is
    # news to it); inside a unit of work they keep one generic plan. The setting ends with the transaction.
    pool, _ = pool
    lookup = "SELECT count(*) FROM processed_events WHERE consumer = $1 AND event_id = ANY($2::text[])"
    async with UnitOfWork(pool) as uow:
        assert await uow.conn.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
        for n in range(8):
            assert await uow.conn.fetchval(lookup, "test:plans", [f"e{n}", f"e{n + 1}"]) == 0
        plans = await uow.conn.fetchrow(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1", lookup)
        assert (plans["generic_plans"], plans["custom_plans"]) == (8, 0), dict(plans)
    assert await asyncio.wait_for(pool.fetchval("SHOW plan_cache_mode"), 30) == "auto"


async def test_a_plan_made_while_its_table_was_empty_follows_the_tables_growth_within_a_statement_lifetime(pool):
    # A fresh system's tables start empty, so a unit of work's first generic plans are seq scans, and PostgreSQL remakes
    # a plan only when its table is analyzed: the pool prepares each statement again every STATEMENT_LIFETIME_SECONDS,
    # and the new plan is made for the table as it is then. Autovacuum is off for this table: nothing analyzes it.
    # The lookup is intake's (the latest step of each case of a batch: services/intake/adapters/step_store.py).
    assert STATEMENT_LIFETIME_SECONDS <= 30  # within seconds: a first burst lasts about a minute
    pool, _ = pool
    lookup = "SELECT case_id, max(occurred_at) FROM steps WHERE case_id = ANY($1::uuid[]) GROUP BY case_id"
    ids = [uuid.uuid4() for _ in range(12)]
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE TABLE steps (update_id text PRIMARY KEY, case_id uuid NOT NULL, case_no text, event_type text, "
            "occurred_at timestamptz NOT NULL, status text, external_status_code text, description text, "
            "media_url text, " + ", ".join(f"note{n} text" for n in range(12))  # wide: a seq scan while empty
            + ") WITH (autovacuum_enabled = false)")
        await conn.execute("CREATE INDEX steps_by_case ON steps (case_id, occurred_at)")

    async def plan_of_the_lookup() -> str:
        """Run the lookup in a unit of work as a handler does, then explain the statement the pool ran it as."""
        for _ in range(3):
            async with UnitOfWork(pool) as uow:
                assert await asyncio.wait_for(uow.conn.fetch(lookup, ids), 30) == []
                try:
                    name = await uow.conn.fetchval("SELECT name FROM pg_prepared_statements WHERE statement = $1",
                                                   lookup)
                    if name is not None:
                        rows = await uow.conn.fetch(f"EXPLAIN EXECUTE {name}('{{{','.join(map(str, ids))}}}')")
                        return "\n".join(r[0] for r in rows)
                except asyncpg.InvalidSQLStatementNameError:
                    pass
            # The lookup's statement expired just after it ran, and preparing one of these two queries again closed
            # it (asyncpg closes expired statements as it prepares another): the next round prepares it anew.
        raise AssertionError("the lookup's prepared statement was not found in three rounds")

    assert "Seq Scan" in await plan_of_the_lookup()  # made on the empty table
    async with pool.acquire() as conn:
        await asyncio.wait_for(conn.execute(
            "INSERT INTO steps (update_id, case_id, case_no, event_type, occurred_at, status, description) "
            "SELECT 'u' || n, gen_random_uuid(), 'no' || n, 'case.accepted', now() - n * interval '1 s', 'open', "
            "repeat('x', 80) FROM generate_series(1, 30000) n"), 30)
    assert "Seq Scan" in await plan_of_the_lookup()  # grown: the statement and its plan kept, for now
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STATEMENT_LIFETIME_SECONDS + 10
    while "Seq Scan" in (now := await plan_of_the_lookup()) and loop.time() < deadline:
        await asyncio.sleep(0.5)
    assert "Seq Scan" not in now and "steps_by_case" in now, now
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT analyze_count + autoanalyze_count FROM pg_stat_user_tables "
                                   "WHERE relid = 'steps'::regclass") == 0

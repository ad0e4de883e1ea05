"""Open311's anonymous list, paged and served by an index (issue 18, item 6: "anonymous Open311 lists … with no index
behind them"), proved on a street with a long history: 20,000 reports loaded into the test's schema.

Anyone may ask GET /open311/v2/requests.json as often as the front door lets them; each answer must cost its page,
not the table. The plan of the very query the endpoint runs (repository.PUBLIC_REQUESTS) is read with
EXPLAIN (FORMAT JSON): no sequential scan of reports, the default list and a filtered one alike; the endpoint answers
a page of 1000 within a bound and names the next page."""
from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import pytest

from services.intake.adapters.repository import PUBLIC_REQUESTS, public_requests_args
from shared.clock import now
from tests.integration.test_open311 import client, intake  # noqa: F401 (the fixture)

pytestmark = pytest.mark.integration

ROWS = 20_000
CATEGORIES = ["CM01", "CM02", "CM03", "CM04", "CM05", "CM06", "CM07", "CM08", "CM09", "CM10"]
PAGE_WITHIN_SECONDS = 5.0  # a page of 1000 rendered as JSON; well under a second on an idle machine


async def _load(pool) -> None:
    """20,000 reports over the last 120 days, built by PostgreSQL itself in one statement: every tenth held
    ('reported', never public), a third closed, the rest accepted; ten categories."""
    await pool.execute(
        """INSERT INTO reports (case_id, case_no, source, external_id, category, description, lon, lat, address,
                                observed_at, received_at, received_via, client, state, updated_at)
           SELECT gen_random_uuid(), 'L' || lpad(n::text, 8, '0'), 'hotline', 'load-' || n,
                  ($2::text[])[1 + n % 10], '路灯不亮 ' || n, 117.5751, 34.8718, '文化路' || n || '号',
                  $1::timestamptz - n * interval '518 seconds', $1::timestamptz - n * interval '518 seconds', 'http',
                  'credential:cload', CASE WHEN n % 10 = 0 THEN 'reported' WHEN n % 3 = 0 THEN 'closed'
                                           ELSE 'accepted' END, $1::timestamptz
             FROM generate_series(1, $3::int) AS n""",
        now(), CATEGORIES, ROWS)
    await pool.execute("ANALYZE reports")


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _plan(pool, *, generic: bool, **filters) -> list[dict]:
    """The plan of PUBLIC_REQUESTS; `generic`: the one PostgreSQL may switch a prepared statement to after its fifth
    run (asyncpg prepares each query once per connection), whatever the parameters."""
    args = public_requests_args(case_nos=None, limit=1001, offset=0, **filters)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL plan_cache_mode = {'force_generic_plan' if generic else 'force_custom_plan'}")
        raw = await conn.fetchval("EXPLAIN (FORMAT JSON) " + PUBLIC_REQUESTS, *args)
    [top] = json.loads(raw) if isinstance(raw, str) else raw
    return list(_nodes(top["Plan"]))


async def test_the_public_list_is_read_from_an_index_and_paged(intake):
    pool = intake.runtime.pool
    await asyncio.wait_for(_load(pool), 120)
    assert await pool.fetchval("SELECT count(*) FROM reports") >= ROWS

    # The default list (the last 90 days, every public state) and a filtered one (service_code, status=open).
    default = {"categories": None, "start": now() - timedelta(days=90), "end": None, "closed": None}
    filtered = {"categories": ["CM04"], "start": now() - timedelta(days=90), "end": None, "closed": False}
    for filters, generic in [(f, g) for f in (default, filtered) for g in (False, True)]:
        nodes = await _plan(pool, generic=generic, **filters)
        on_reports = [n for n in nodes if n.get("Relation Name") == "reports"]
        assert on_reports, nodes
        assert not [n for n in on_reports if n["Node Type"] == "Seq Scan"], (filters, generic, nodes)
        assert any(n["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan") for n in on_reports)
        used = {n.get("Index Name") for n in nodes}
        assert used & {"reports_public_by_received", "reports_public_by_category"}, (filters, generic, used)

    async with client(intake) as http:
        started = time.monotonic()
        first = await http.get("/open311/v2/requests.json")
        took = time.monotonic() - started
        second = await http.get("/open311/v2/requests.json", params={"page": "2"})
        cm04 = await http.get("/open311/v2/requests.json", params={"service_code": "CM04", "status": "open"})
        far = await http.get("/open311/v2/requests.json", params={"page": "1000"})
    print(f"first page of 1000 in {took:.3f} s")
    assert first.status_code == 200 and took < PAGE_WITHIN_SECONDS, took
    page1, page2 = first.json(), second.json()
    assert len(page1) == len(page2) == 1000
    # Newest first, no held report, and page 2 goes on where page 1 stopped.
    ids1, ids2 = [r["service_request_id"] for r in page1], [r["service_request_id"] for r in page2]
    assert ids1 == sorted(ids1) and not set(ids1) & set(ids2) and ids1[-1] < ids2[0]
    held = await pool.fetch("SELECT case_no FROM reports WHERE state = 'reported'")
    assert not {r["case_no"] for r in held} & set(ids1 + ids2)
    assert first.headers["X-Next-Page"] == "2" and 'rel="next"' in first.headers["Link"]
    assert cm04.status_code == 200 and {r["service_code"] for r in cm04.json()} == {"CM04"}
    assert all(r["status"] == "open" for r in cm04.json())
    assert far.status_code == 200 and far.json() == [] and "X-Next-Page" not in far.headers

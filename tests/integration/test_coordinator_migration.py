"""Migration 011 on a database that already holds cases: the coordinators' columns are filled from the history
(case.reported's coordinator, photos, address and point), so their lists show what was reported before it."""
from __future__ import annotations

import asyncio
import shutil

import asyncpg
import orjson
import pytest

from services.supervision.bootstrap import MIGRATIONS
from shared.db import PLUMBING_SQL, migrate

pytestmark = pytest.mark.integration


async def test_migration_011_fills_the_coordinators_columns_from_the_history(isolated, tmp_path):
    before = tmp_path / "migrations"  # the same folder name: the applied names must match the real folder's
    before.mkdir()
    for path in sorted(MIGRATIONS.glob("*.sql")):
        if path.name < "011":
            shutil.copy(path, before / path.name)
    schema = isolated.schema("supervision")
    conn = await asyncio.wait_for(asyncpg.connect(isolated.database_url), 10)
    try:
        await asyncio.wait_for(migrate(conn, schema, [PLUMBING_SQL, before]), 60)
        await conn.execute(f'SET search_path TO "{schema}", public')
        reported = {"case_no": "20261101-0001", "source": "terminal", "coordinator": {"worker_id": "W001",
                    "device_id": "SZT-0001"}, "media": ["https://p.example.org/1.jpg"], "address": "市社家宿舍11号楼",
                    "location": {"lon": 117.578802, "lat": 34.874615}}
        hotline = {"case_no": "20261101-0002", "source": "hotline", "coordinator": None, "media": [],
                   "address": "某处", "location": None}
        for case_id, data in (("old-1", reported), ("old-2", hotline)):
            await conn.execute("INSERT INTO cases (case_id, case_no, state, reported_at) VALUES ($1, $2, 'accepted', now())",
                               case_id, data["case_no"])
            await conn.execute(
                """INSERT INTO case_events (event_id, case_id, type, version, occurred_at, source, effect, state_after, data)
                   VALUES ($1, $2, 'case.reported', 1, now(), 'intake', 'moved', 'reported', $3::jsonb)""",
                f"e-{case_id}", case_id, orjson.dumps(data).decode())

        applied = await asyncio.wait_for(migrate(conn, schema, [PLUMBING_SQL, MIGRATIONS]), 60)
        assert "migrations/011_coordinators.sql" in applied
        rows = {r["case_id"]: dict(r) for r in await conn.fetch(
            "SELECT case_id, reported_by, report_media::text, address, location::text, on_the_spot FROM cases")}
        assert rows["old-1"]["reported_by"] == "W001" and orjson.loads(rows["old-1"]["report_media"]) == reported["media"]
        assert rows["old-1"]["address"] == "市社家宿舍11号楼"
        assert orjson.loads(rows["old-1"]["location"]) == reported["location"] and rows["old-1"]["on_the_spot"] is False
        assert rows["old-2"]["reported_by"] is None and rows["old-2"]["location"] is None
    finally:
        await conn.close()

"""Attacks on the owner's page API (GET /api/v1/tasks/{case_no}, GET /api/v1/tasks?filter=): an owner tries to
read another owner's task, to learn whether a case exists, to widen its list with a crafted filter or a cursor
carried across filters, and to read a case after the command center took it away — each fails, saying nothing."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from shared.clock import now
from shared.contracts.cases import CaseDispatched
from shared.contracts.common import TimeLimit
from tests.integration.test_owner_task_page_api import make
from tests.supervision_cases import OTHER, OWNER, http
from tests.supervision_cases import UNIT_GRID, send, start
from tests.support import eventually, grant

pytestmark = pytest.mark.integration


async def test_an_owner_cannot_read_or_probe_another_owners_tasks(isolated):
    service = await start(isolated)
    pool = service.runtime.pool
    try:
        await grant(isolated, service, token="atk-hw", name="atk-hw", role="owner", owner_code=OWNER)
        await grant(isolated, service, token="atk-cg", name="atk-cg", role="owner", owner_code=OTHER)
        mine = await make(isolated, pool, "M", [timedelta(hours=1), timedelta(hours=2), timedelta(hours=3)])
        theirs = await make(isolated, pool, "X", [timedelta(minutes=10)], owner=OTHER)
        async with http(service, "atk-hw") as owner, http(service, "atk-cg") as other:
            # Another owner's case and a case that does not exist: the same 404, the same words.
            stolen = await owner.get(f"/api/v1/tasks/{theirs[0]}")
            unknown = await owner.get("/api/v1/tasks/20261129-Z999")
            assert stolen.status_code == unknown.status_code == 404
            assert stolen.json()["detail"].replace(theirs[0], "N") == unknown.json()["detail"].replace("20261129-Z999", "N")
            assert "垃圾" not in stolen.text and "tasks" not in stolen.json()

            # A crafted filter is a 422 naming the allowed values, never SQL.
            for crafted in ("new' OR '1'='1", "new;DROP TABLE cases", "owner", "", "NEW"):
                answer = await owner.get("/api/v1/tasks", params={"filter": crafted, "limit": 500})
                assert answer.status_code == 422, (crafted, answer.text)
            assert await pool.fetchval("SELECT count(*) FROM cases") == 4

            # A cursor from one filter used with another only moves within the caller's own list.
            page = (await owner.get("/api/v1/tasks", params={"filter": "new", "limit": 1})).json()
            carried = await owner.get("/api/v1/tasks", params={"filter": "overdue", "cursor": page["next"]})
            assert carried.status_code == 200 and carried.json()["tasks"] == []
            everything = await owner.get("/api/v1/tasks", params={"cursor": page["next"], "limit": 500})
            assert [t["case_no"] for t in everything.json()["tasks"]] == mine[1:]
            assert (await other.get("/api/v1/tasks", params={"cursor": page["next"]})).status_code == 400

            # Taken away (dispatched to the other owner): the former holder can no longer read it.
            at = now().replace(microsecond=0)
            await send(isolated, CaseDispatched(
                case_no=mine[0], owner=OTHER, category="CM04", unit_grid=UNIT_GRID, priority="normal",
                time_limit=TimeLimit(value=4, unit="hours"), dispatched_at=at, due_at=at + timedelta(hours=4),
                occasion="manual", note="改派城管").envelope(source="routing", case_id="case-M-000"))
            await eventually(lambda: pool.fetchval("SELECT owner = $2 FROM cases WHERE case_no = $1", mine[0], OTHER))
            assert (await owner.get(f"/api/v1/tasks/{mine[0]}")).status_code == 404
            now_theirs = await other.get(f"/api/v1/tasks/{mine[0]}")
            assert now_theirs.status_code == 200 and now_theirs.json()["case_no"] == mine[0]
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)

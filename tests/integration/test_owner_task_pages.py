"""GET /api/v1/tasks?cursor=: an owner pages through every open task, due first, on the real Kafka and PostgreSQL —
each task exactly once while tasks come and go, never another owner's, and a bad cursor refused with a 400."""
from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta

import pytest

from services.supervision.adapters.views import OPEN_TASK, TASK_ORDER, TASK_ORDER_DESC
from shared.clock import now
from shared.contracts.common import TimeLimit
from tests.supervision_cases import OTHER, OWNER, http
from tests.supervision_cases import accepted, dispatched, reported, send, start
from tests.support import eventually, grant

pytestmark = pytest.mark.integration

PAGE = 7


async def open_cases(settings, pool, owner: str, dues: list[timedelta], prefix: str) -> dict[str, str]:
    """Cases dispatched to `owner`, one per due offset from now; case_no → case_id."""
    at = now().replace(microsecond=0)
    made = {}
    for i, due in enumerate(dues):
        case_id, case_no = f"case-{prefix}-{i:03d}", f"20261128-{prefix}{i:03d}"
        await send(settings, reported(case_id, case_no), accepted(case_id, case_no),
                   dispatched(case_id, case_no, owner=owner, category="CM04", limit=TimeLimit(value=4, unit="hours"),
                              at=at, due=at + due))
        made[case_no] = case_id
    await eventually(lambda: pool.fetchval(
        "SELECT count(*) = $2 FROM cases WHERE case_id = ANY($1) AND state = 'dispatched'", list(made.values()),
        len(made)), timeout=60)
    return made


def cursor_of(payload: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


async def test_an_owner_pages_through_every_task_once_while_tasks_come_and_go(isolated):
    service = await start(isolated)
    pool = service.runtime.pool
    try:
        await grant(isolated, service, token="pages-hw", name="pages-hw", role="owner", owner_code=OWNER)
        await grant(isolated, service, token="pages-cg", name="pages-cg", role="owner", owner_code=OTHER)
        # 30 tasks over 4+ pages; pairs share a deadline so the case number must break the tie.
        dues = [timedelta(hours=1 + i // 2) for i in range(30)]
        mine = await open_cases(isolated, pool, OWNER, dues, "A")
        theirs = await open_cases(isolated, pool, OTHER, [timedelta(minutes=30)] * 3, "B")

        async with http(service, "pages-hw") as owner, http(service, "pages-cg") as other:
            first = (await owner.get("/api/v1/tasks", params={"limit": PAGE})).json()
            assert first["count"] == PAGE and first["next"]
            seen = [t["case_no"] for t in first["tasks"]]
            # Tasks come and go between pages: one not yet reached is returned (leaves the list), a new one
            # arrives due last, and one already seen is returned too; nothing shifts or repeats.
            leaving, gone_behind = "20261128-A020", seen[2]
            for case_no in (leaving, gone_behind):
                answer = await owner.post(f"/api/v1/tasks/{case_no}/updates",
                                          json={"type": "task.returned", "reason": "不属于本单位职责"})
                assert answer.status_code == 200 and answer.json()["state"] == "returned"
            newest = await open_cases(isolated, pool, OWNER, [timedelta(days=30)], "C")

            cursor, pages = first["next"], 1
            while cursor:
                page = await owner.get("/api/v1/tasks", params={"cursor": cursor, "limit": PAGE})
                assert page.status_code == 200, page.text
                body = page.json()
                assert body["owner"] == OWNER and body["count"] == len(body["tasks"]) <= PAGE
                seen += [t["case_no"] for t in body["tasks"]]
                cursor, pages = body["next"], pages + 1
            assert pages == 5

            expected = sorted(set(mine) - {leaving, gone_behind}) + list(newest)
            assert len(seen) == len(set(seen)), "a task was listed twice"
            assert set(seen) - {gone_behind} == set(expected)
            assert seen[0] == "20261128-A000" and seen[-1] == "20261128-C000"  # the oldest deadline and the newest
            assert not set(seen) & set(theirs)

            # The whole list in one page says there is no next page; the other owner sees only its own.
            whole = (await owner.get("/api/v1/tasks", params={"limit": 500})).json()
            assert whole["next"] is None and [t["case_no"] for t in whole["tasks"]] == expected
            dues_listed = [t["due_at"] for t in whole["tasks"]]
            assert dues_listed == sorted(dues_listed)
            their_list = (await other.get("/api/v1/tasks", params={"limit": 2})).json()
            assert [t["case_no"] for t in their_list["tasks"]] == sorted(theirs)[:2]

            # A cursor issued to another owner is refused, not read: it shows nothing of either list.
            stolen = await owner.get("/api/v1/tasks", params={"cursor": their_list["next"]})
            assert stolen.status_code == 400 and "another" in stolen.json()["detail"]
            assert "tasks" not in stolen.json()
            mine_to_them = await other.get("/api/v1/tasks", params={"cursor": first["next"]})
            assert mine_to_them.status_code == 400
            # Forged, garbled and hostile cursors: a clear 400 each, never a 500.
            for bad in ("!!!", "bm90IGpzb24", cursor_of([1, 2]), cursor_of({"v": 2, "owner": OWNER}),
                        cursor_of({"v": 1, "owner": OWNER, "due": "yesterday", "no": "x", "id": "y"}),
                        cursor_of({"v": 1, "owner": OWNER, "due": None, "no": "a\u0000", "id": "y"}),
                        cursor_of({"v": 1, "owner": OWNER, "due": "2026-12-01T10:00:00", "no": "x", "id": "y"}),
                        cursor_of({"v": 1, "owner": OWNER, "due": None, "no": 5, "id": "y"}), "A" * 1001):
                refused = await owner.get("/api/v1/tasks", params={"cursor": bad})
                assert refused.status_code in (400, 422) and refused.json()["detail"], (bad, refused.text)
            # A well-formed cursor written by hand only points into the caller's own list.
            by_hand = cursor_of({"v": 1, "owner": OWNER, "due": None, "no": "", "id": ""})
            assert (await owner.get("/api/v1/tasks", params={"cursor": by_hand})).json()["tasks"] == []

        # Each page is a range scan of the owner's index, not a sort of the owner's whole backlog.
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL enable_seqscan = off")
            plan = await conn.fetchval(
                f"""EXPLAIN (FORMAT JSON) SELECT case_id FROM cases WHERE {OPEN_TASK}
                      AND ({TASK_ORDER}) > (COALESCE($2::timestamptz, 'infinity'::timestamptz), $3::text, $4::text)
                    ORDER BY {TASK_ORDER} LIMIT 8""", OWNER, now(), "x", "y")
        plan = json.dumps(plan)  # the pool decodes json; the test reads the plan as text
        assert "cases_owner_open_tasks" in plan and '"Sort"' not in plan, plan
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)


async def test_an_owner_reads_the_list_due_last_first_to_the_end_in_reverse(isolated):
    service = await start(isolated)
    pool = service.runtime.pool
    try:
        await grant(isolated, service, token="order-hw", name="order-hw", role="owner", owner_code=OWNER)
        # 17 tasks, pairs sharing a deadline (the case number breaks the tie backwards too).
        mine = await open_cases(isolated, pool, OWNER, [timedelta(hours=1 + i // 2) for i in range(17)], "D")
        async with http(service, "order-hw") as owner:
            forwards = (await owner.get("/api/v1/tasks", params={"limit": 500})).json()
            first_order = [t["case_no"] for t in forwards["tasks"]]
            assert sorted(first_order) == sorted(mine)

            latest = await owner.get("/api/v1/tasks", params={"order": "due_last", "limit": PAGE})
            assert latest.status_code == 200, latest.text
            body = latest.json()
            # The task due last is on top of the first page: one step, however long the list.
            assert body["tasks"][0]["case_no"] == first_order[-1] and body["next"]
            seen, cursor = [t["case_no"] for t in body["tasks"]], body["next"]
            while cursor:
                page = (await owner.get("/api/v1/tasks", params={"order": "due_last", "cursor": cursor,
                                                                  "limit": PAGE})).json()
                seen += [t["case_no"] for t in page["tasks"]]
                cursor = page["next"]
            assert seen == first_order[::-1], "due last is not the same list backwards, each task once"

            # A cursor keeps its order: read in the other order it would skip or repeat tasks, so it is refused.
            first_page = (await owner.get("/api/v1/tasks", params={"limit": PAGE})).json()
            crossed = await owner.get("/api/v1/tasks", params={"order": "due_last", "cursor": first_page["next"]})
            assert crossed.status_code == 400 and "order" in crossed.json()["detail"]
            crossed = await owner.get("/api/v1/tasks", params={"cursor": body["next"]})
            assert crossed.status_code == 400 and "due_last" in crossed.json()["detail"]
            unknown = await owner.get("/api/v1/tasks", params={"order": "newest"})
            assert unknown.status_code == 422 and "due_last" in unknown.text
            forged = cursor_of({"v": 1, "owner": OWNER, "due": None, "no": "x", "id": "y", "order": "sideways"})
            assert (await owner.get("/api/v1/tasks", params={"cursor": forged})).status_code == 400

        # Backwards is the same index scanned from its end, not a sort of the backlog.
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL enable_seqscan = off")
            plan = await conn.fetchval(
                f"""EXPLAIN (FORMAT JSON) SELECT case_id FROM cases WHERE {OPEN_TASK}
                      AND ({TASK_ORDER}) < (COALESCE($2::timestamptz, 'infinity'::timestamptz), $3::text, $4::text)
                    ORDER BY {TASK_ORDER_DESC} LIMIT 8""", OWNER, now(), "x", "y")
        plan = json.dumps(plan)
        assert "cases_owner_open_tasks" in plan and '"Sort"' not in plan and "Backward" in plan, plan
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)

"""What the owner's page (/owner/) reads from supervision, on the real Kafka and PostgreSQL: GET /api/v1/tasks?filter=
narrows the open list (new, in progress, returned after a failed check, extension pending, overdue, waiting for the
check) with the same keyset paging reaching every task of the filter, the last 督办 is on the task's row, and
GET /api/v1/tasks/{case_no} gives the owner-safe view of its own task (place, photos, masked reporter, work time left,
history without the operators' names) — another owner's or an unknown case a 404, a bad filter a 422."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from shared.clock import now
from shared.contracts.cases import CaseDispatched, CaseReported
from shared.contracts.common import Location, Reporter, TimeLimit
from tests.supervision_cases import OTHER, OWNER, http
from tests.supervision_cases import UNIT_GRID, accepted, dispatched, send, start
from tests.support import eventually, grant

pytestmark = pytest.mark.integration

LIMIT = TimeLimit(value=4, unit="hours")


def reported_with_place(case_id: str, case_no: str):
    return CaseReported(
        case_no=case_no, source="terminal", external_id=f"ext-{case_no}", category="CM04",
        description="垃圾箱破损，垃圾外溢", observed_at=now(), unit_grid=UNIT_GRID,
        location=Location(lon=117.575168, lat=34.871845), address="市社家宿舍1号楼",
        reporter=Reporter(name="李**", phone="139****1001"), media=["/media/" + "a" * 64],
    ).envelope(source="intake", case_id=case_id)


async def make(settings, pool, prefix: str, dues: list[timedelta], owner: str = OWNER) -> list[str]:
    at = now().replace(microsecond=0)
    made = {}
    for i, due in enumerate(dues):
        case_id, case_no = f"case-{prefix}-{i:03d}", f"20261129-{prefix}{i:03d}"
        await send(settings, reported_with_place(case_id, case_no), accepted(case_id, case_no),
                   dispatched(case_id, case_no, owner=owner, category="CM04", limit=LIMIT, at=at, due=at + due))
        made[case_no] = case_id
    await eventually(lambda: pool.fetchval("SELECT count(*) = $2 FROM cases WHERE case_id = ANY($1) AND state = "
                                           "'dispatched'", list(made.values()), len(made)), timeout=60)
    return list(made)


async def listed(client, only: str | None, page: int = 2) -> list[str]:
    """Every task of the filter, followed page by page to the end."""
    seen, cursor = [], None
    for _ in range(50):
        params = {"limit": page, **({"filter": only} if only else {}), **({"cursor": cursor} if cursor else {})}
        answer = await client.get("/api/v1/tasks", params=params)
        assert answer.status_code == 200, answer.text
        seen += [t["case_no"] for t in answer.json()["tasks"]]
        cursor = answer.json()["next"]
        if not cursor:
            return seen
    raise AssertionError("paging did not end")


async def test_the_owner_page_filters_pages_and_reads_its_own_task_only(isolated):
    service = await start(isolated)
    pool = service.runtime.pool
    try:
        await grant(isolated, service, token="otp-hw", name="otp-hw", role="owner", owner_code=OWNER)
        await grant(isolated, service, token="otp-cg", name="otp-cg", role="owner", owner_code=OTHER)
        await grant(isolated, service, token="otp-op", name="值班员", role="operator")
        cases = await make(isolated, pool, "F", [timedelta(hours=h) for h in (1, 2, 3, 4, 5, 6, 7)])
        late = await make(isolated, pool, "L", [timedelta(minutes=-30), timedelta(minutes=-20)])
        theirs = await make(isolated, pool, "T", [timedelta(hours=1)], owner=OTHER)
        fresh, signed, suspended, asked, done, rework = cases[:6]
        async with http(service, "otp-hw") as owner, http(service, "otp-cg") as other, \
                http(service, "otp-op") as operator:
            async def update(case_no: str, body: dict) -> None:
                answer = await owner.post(f"/api/v1/tasks/{case_no}/updates", json=body)
                assert answer.status_code == 200, answer.text

            for case_no in (signed, suspended, asked, done, rework):
                await update(case_no, {"type": "task.accepted"})
            await update(suspended, {"type": "task.suspended", "reason": "等待居民在家"})
            until = (now() + timedelta(days=3)).isoformat()
            await update(asked, {"type": "task.extension-requested", "until": until, "reason": "需采购配件"})
            await update(done, {"type": "task.resolved", "result": "已更换", "media": []})
            # A failed check sends `rework` back: routing dispatches it again to the same owner (occasion rework).
            await update(rework, {"type": "task.resolved", "result": "已清理", "media": []})
            failed = await operator.post(f"/api/v1/cases/{rework}/check", json={"passed": False, "note": "仍有垃圾"})
            assert failed.status_code == 200 and failed.json()["state"] == "rework", failed.text
            at = now().replace(microsecond=0)
            again = CaseDispatched(case_no=rework, owner=OWNER, category="CM04", unit_grid=UNIT_GRID,
                                   priority="normal", time_limit=LIMIT, dispatched_at=at, due_at=at + timedelta(hours=9),
                                   occasion="rework", note="仍有垃圾").envelope(source="routing", case_id="case-F-005")
            await send(isolated, again)
            await eventually(lambda: pool.fetchval("SELECT state = 'dispatched' FROM cases WHERE case_no = $1", rework))
            urged = await operator.post(f"/api/v1/cases/{fresh}/urge", json={"note": "请今日处置"})
            assert urged.status_code == 200, urged.text

            assert set(await listed(owner, "new")) == {fresh, rework, cases[6], *late}
            assert await listed(owner, "in_progress") == [signed, suspended, asked]
            assert await listed(owner, "returned") == [rework]
            assert await listed(owner, "extension") == [asked]
            assert await listed(owner, "overdue") == late
            assert await listed(owner, "checking") == [done]
            everything = await listed(owner, None)
            assert len(everything) == 9 and not set(everything) & set(theirs)

            # The 督办 is on the task's row, so the list shows it without opening the task.
            first = (await owner.get("/api/v1/tasks", params={"filter": "new", "limit": 100})).json()["tasks"]
            row = next(t for t in first if t["case_no"] == fresh)
            assert row["urge_note"] == "请今日处置" and row["urged_at"].endswith("+08:00")
            assert next(t for t in first if t["case_no"] == rework)["rework_count"] == 1

            # The task page: place, photos, the reporter masked, the work time left, the history's facts.
            page = await owner.get(f"/api/v1/tasks/{fresh}")
            assert page.status_code == 200, page.text
            view = page.json()
            assert view["address"] == "市社家宿舍1号楼" and view["location"] == {"lon": 117.575168, "lat": 34.871845}
            assert view["media"] == ["/media/" + "a" * 64]
            assert view["reporter"] == {"name": "李**", "phone": "139****1001"}
            assert 0 <= view["work_seconds_left"] <= 3600  # work time: none at all on a weekend
            assert {s["kind"] for s in view["stages"]} >= {"handling"}
            urge = [h for h in view["history"] if h["type"] == "case.urged"]
            assert urge and urge[0]["data"] == {"note": "请今日处置"}  # not the operator's name
            assert all("by" not in h["data"] and "reporter" not in h["data"] for h in view["history"])
            assert (await owner.get(f"/api/v1/tasks/{late[0]}")).json()["work_seconds_left"] == 0

            # Another owner's task and an unknown one answer the same 404; the operator's token is not an owner's.
            for client, case_no in ((other, fresh), (owner, theirs[0]), (owner, "20261129-NOPE")):
                refused = await client.get(f"/api/v1/tasks/{case_no}")
                assert refused.status_code == 404 and "不属于本单位" in refused.json()["detail"], refused.text
            assert (await operator.get(f"/api/v1/tasks/{fresh}")).status_code == 403
            bad = await owner.get("/api/v1/tasks", params={"filter": "everything"})
            assert bad.status_code == 422 and "new" in bad.text
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)

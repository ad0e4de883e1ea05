"""The coordinator's part of the loop through the four real services (issue 16, items 4–5): the on-site check
(核查) by the coordinator of the case's unit grid, their own reports and pending checks, and 自行处置 — a report
fixed on the spot, closed at once without dispatch, counted for the coordinator, and answered to no one."""
from __future__ import annotations

import asyncio
import uuid
from zoneinfo import ZoneInfo

import httpx
import pytest

from shared.clock import now
from shared.topics import Topics, ensure_topics
from tests.e2e.conftest import TERMINAL_TOKEN
from tests.support import TopicReader, grant

pytestmark = pytest.mark.e2e

STREET_ZONE = ZoneInfo("Asia/Shanghai")
# 市社家宿舍11号楼: in unit grid 3704020010010101, W001's (the street's people.csv); CM04 (垃圾箱) goes to 环卫所.
W001_GRID = "3704020010010101"
IN_W001_GRID = {"lon": 117.578802, "lat": 34.874615}
PHOTO = "https://photos.example.org/before.jpg"  # relative /media/<id> URLs: engineer B's MediaUrl (see report)


def client(service, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://w",
                             headers={"Authorization": f"Bearer {token}"}, timeout=15)


def terminal_report(**fields) -> dict:
    body = {"source": "terminal", "external_id": f"SZT-0001-{uuid.uuid4().hex[:8]}", "category": "CM04",
            "description": "垃圾箱倾倒，垃圾散落", "location": IN_W001_GRID, "address": None, "reporter": None,
            "coordinator": None, "media": [PHOTO], "observed_at": now().astimezone(STREET_ZONE).isoformat()}
    body.update(fields)
    return body


async def until(check, timeout: float = 30):
    async def poll():
        while not (value := await check()):
            await asyncio.sleep(0.1)
        return value
    return await asyncio.wait_for(poll(), timeout)


async def case_in_state(operator: httpx.AsyncClient, case_no: str, state: str) -> dict:
    async def check():
        answer = await operator.get(f"/api/v1/cases/{case_no}")
        return answer.json() if answer.status_code == 200 and answer.json()["state"] == state else None
    return await until(check)


async def test_the_coordinator_of_the_grid_checks_a_resolved_case_and_follows_their_reports(street):
    s = street.supervision
    await ensure_topics(street.settings.kafka_bootstrap, [Topics(street.settings.topic_prefix).for_owner("huanwei")])
    await grant(street.settings, street.intake, street.routing, s, street.notify, token="c-op", name="值班员",
                role="operator")
    await grant(street.settings, s, token="c-huanwei", name="环卫所", role="owner", owner_code="huanwei")
    async with client(street.intake, TERMINAL_TOKEN) as terminal_intake, client(s, TERMINAL_TOKEN) as w001, \
            client(s, "c-op") as operator, client(s, "c-huanwei") as owner:
        made = await terminal_intake.post("/api/v1/reports", json=terminal_report())
        assert made.status_code == 201, made.text
        case_no = made.json()["case_no"]
        await case_in_state(operator, case_no, "dispatched")

        # Their own reports: the new one, in Chinese, with its holder and the report's photo.
        mine = (await w001.get("/api/v1/coordinator/reports")).json()
        row = next(r for r in mine["reports"] if r["case_no"] == case_no)
        assert row["state"] == "dispatched" and row["state_label"] == "已派遣（待签收）"
        assert row["holder"] == "环卫所" and row["media"] == [PHOTO] and row["outcome"] is None
        assert row["category"] == "CM04" and row["category_name"] and row["reported_at"].endswith("+08:00")

        # Nothing to check until the owner resolves it.
        assert case_no not in [c["case_no"] for c in (await w001.get("/api/v1/coordinator/checks")).json()["checks"]]
        for update in ({"type": "task.accepted"},
                       {"type": "task.resolved", "result": "已扶正垃圾箱并清运", "media": ["https://photos.example.org/after.jpg"]}):
            answer = await owner.post(f"/api/v1/tasks/{case_no}/updates", json=update)
            assert answer.status_code == 200, answer.text
        checks = (await w001.get("/api/v1/coordinator/checks")).json()["checks"]
        pending = next(c for c in checks if c["case_no"] == case_no)
        assert pending["result"] == "已扶正垃圾箱并清运" and pending["result_media"] == ["https://photos.example.org/after.jpg"]
        assert pending["location"] == IN_W001_GRID and pending["unit_grid"] == W001_GRID
        assert pending["holder"] == "环卫所" and pending["state_label"] == "已处置（待核查）"

        # The check: the same effect as the operator's, the history naming the coordinator, with the photo.
        checked = await w001.post(f"/api/v1/cases/{case_no}/check",
                                  json={"passed": True, "note": "现场已整改", "media": [PHOTO]})
        assert checked.status_code == 200, checked.text
        assert checked.json() == {"case_no": case_no, "state": "closed", "event": "case.closed"}
        view = await case_in_state(operator, case_no, "closed")
        closed = next(h for h in view["history"] if h["type"] == "case.closed")
        assert closed["data"]["by"] == "coordinator:W001" and closed["data"]["media"] == [PHOTO]
        assert closed["data"]["outcome"] == "resolved" and closed["data"]["on_the_spot"] is False
        assert case_no not in [c["case_no"] for c in (await w001.get("/api/v1/coordinator/checks")).json()["checks"]]
        row = next(r for r in (await w001.get("/api/v1/coordinator/reports")).json()["reports"] if r["case_no"] == case_no)
        assert (row["state_label"], row["outcome"], row["outcome_label"]) == ("已结案", "resolved", "已解决")
        # A check of a case that is not resolved (any more) is refused with the reason, not a 500.
        again = await w001.post(f"/api/v1/cases/{case_no}/check", json={"passed": True})
        assert again.status_code == 409 and "resolved or explained" in again.json()["detail"]


async def test_fixed_on_the_spot_is_closed_at_once_without_dispatch_and_counted_for_the_coordinator(street):
    s, topics = street.supervision, Topics(street.settings.topic_prefix)
    await ensure_topics(street.settings.kafka_bootstrap, [topics.for_owner("huanwei")])
    await grant(street.settings, street.intake, street.routing, s, street.notify, token="c-op2", name="值班员",
                role="operator")
    async with client(street.intake, TERMINAL_TOKEN) as terminal_intake, client(s, TERMINAL_TOKEN) as w001, \
            client(s, "c-op2") as operator, \
            TopicReader(street.settings.kafka_bootstrap, topics.cases, topics.tasks("huanwei"), topics.replies) as seen:
        body = terminal_report(description="垃圾箱倾倒，已扶正", reporter={"name": "王女士", "phone": "13900007777"},
                               resolved_on_the_spot={"result": "已扶正垃圾箱，清扫散落垃圾",
                                                     "media": ["https://photos.example.org/after-spot.jpg"]})
        made = await terminal_intake.post("/api/v1/reports", json=body)
        assert made.status_code == 201, made.text
        case_id, case_no = made.json()["case_id"], made.json()["case_no"]

        view = await case_in_state(operator, case_no, "closed")
        assert view["owner"] is None and view["dispatch_count"] == 0 and view["close_outcome"] == "resolved"
        assert view["on_the_spot"] is True and view["reported_by"] == "W001"
        # No clock is left running on it (the dispatch stage would otherwise escalate a closed case).
        assert view["clock"] is None and [(c["kind"], c["state"]) for c in view["stages"]] == [("dispatch", "stopped")]
        assert view["result"] == "已扶正垃圾箱，清扫散落垃圾"
        types = [h["type"] for h in view["history"]]
        assert types == ["case.reported", "case.accepted", "case.closed"], types
        closed = view["history"][-1]["data"]
        assert closed["on_the_spot"] is True and closed["by"] == "coordinator:W001" and closed["on_time"] is True
        assert closed["media"] == ["https://photos.example.org/after-spot.jpg"]
        reported = await seen.wait_for(lambda m: m["type"] == "case.reported" and m.get("case_id") == case_id)
        assert reported["data"]["resolved_on_the_spot"]["result"] == "已扶正垃圾箱，清扫散落垃圾"
        assert reported["data"]["reporter"] is None  # a coordinator's own work: no resident to answer

        # Routing dispatched nothing: no task, no case.dispatched; notify sent no one anything.
        with pytest.raises(asyncio.TimeoutError):
            found = await seen.wait_for(lambda m: m.get("case_id") == case_id and (
                m["type"] in ("case.dispatched", "task.assigned") or m["_topic"] == topics.replies), timeout=4)
            pytest.fail(f"a fixed case was dispatched or answered: {found}")
        assert await street.routing.runtime.pool.fetchval(
            "SELECT count(*) FROM routed_cases WHERE case_id = $1", case_id) == 0

        # Their reports say so; the figures count it for W001 (today's stats and the month's assessment).
        row = next(r for r in (await w001.get("/api/v1/coordinator/reports")).json()["reports"] if r["case_no"] == case_no)
        assert (row["state"], row["outcome"], row["outcome_label"], row["holder"]) == \
            ("closed", "fixed_on_the_spot", "自行处置", None)
        today = now().astimezone(STREET_ZONE).date()
        stats = (await operator.get("/api/v1/stats", params={"from": today.isoformat(), "to": today.isoformat(),
                                                              "by": "coordinator"})).json()
        w = next(r for r in stats["rows"] if r["key"] == "W001")
        assert (w["coordinator_reports"], w["fixed_on_the_spot"], w["closed"]) == (1, 1, 1)
        assessment = (await operator.get("/api/v1/reports/assessment",
                                         params={"month": today.strftime("%Y-%m")})).json()["rows"]
        assert next(r for r in assessment if r["worker_id"] == "W001")["fixed_on_the_spot"] == 1

        # The same report again (its external_id) is the same case, not a second fix.
        again = await terminal_intake.post("/api/v1/reports", json=body)
        assert again.status_code == 200 and again.json()["case_no"] == case_no

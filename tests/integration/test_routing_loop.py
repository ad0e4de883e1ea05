"""Routing closing the loop on the real broker and database: rework, reopening, returns and manual dispatch."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import AsyncIterator, Callable

import httpx
import pytest

from shared.clock import street_zone
from shared.contracts import Envelope
from shared.contracts.cases import CaseAccepted, CaseClosed, CaseReopened, CaseReturned, CaseReworked
from shared.runtime import Service
from shared.settings import Settings
from shared.worktime import WorkCalendar
from services.routing.adapters.street_store import calendar_overrides
from services.routing.bootstrap import build
from tests.support import TopicReader, eventually, grant, publish, running

pytestmark = pytest.mark.integration

UNIT = "3704020010010201"  # in community 370402001001
COMMUNITY = "370402001001"
OPERATOR = "operator-" + uuid.uuid4().hex
OWNER_TOKEN = "owner-" + uuid.uuid4().hex


@pytest.fixture
async def routing(isolated: Settings) -> AsyncIterator[Service]:
    """Routing in-process on an empty schema, with an operator's and an owner's credential learnt."""
    async with running(build(isolated, manage_runtime=False)) as service:
        await grant(isolated, service, token=OPERATOR, name="desk-1", role="operator")
        await grant(isolated, service, token=OWNER_TOKEN, name="huanwei-system", role="owner", owner_code="huanwei")
        yield service


@pytest.fixture
async def http(routing: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=routing.app), base_url="http://routing") as client:
        yield client


def new_case() -> tuple[str, str]:
    case_id = uuid.uuid4().hex
    return case_id, f"20261127-{case_id[:12]}"


def accepted(case_id: str, case_no: str, category: str = "CM04") -> Envelope:
    return CaseAccepted(
        case_no=case_no, category=category, unit_grid=UNIT, description="垃圾箱破损，垃圾外溢",
        address="文化路街道市社家宿舍1号楼", media=["https://example.org/p/1.jpg"],
    ).envelope(source="intake", case_id=case_id)


async def row(routing: Service, case_id: str) -> dict | None:
    found = await routing.runtime.pool.fetchrow("SELECT holder, status FROM routed_cases WHERE case_id = $1", case_id)
    return dict(found) if found else None


async def dispatch(http: httpx.AsyncClient, case_no: str, body: dict, token: str | None = OPERATOR) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await asyncio.wait_for(http.post(f"/api/v1/cases/{case_no}/dispatch", json=body, headers=headers), 10)


def of(case_id: str, type_: str, **data: object) -> Callable[[dict], bool]:
    """A predicate: a message of this type for this case, whose data has these values."""
    return lambda m: (m.get("case_id") == case_id and m.get("type") == type_
                      and all(m["data"].get(k) == v for k, v in data.items()))


async def expected_due(routing: Service, dispatched_at: str, value: float, unit: str) -> datetime:
    async with routing.runtime.pool.acquire() as conn:
        overrides = await asyncio.wait_for(calendar_overrides(conn), 10)
    return WorkCalendar(zone=street_zone(), overrides=overrides).deadline(datetime.fromisoformat(dispatched_at), value, unit)


async def test_a_failed_check_sends_the_case_back_to_the_same_owner_with_a_fresh_limit_once(routing: Service):
    topics = routing.runtime.topics
    bootstrap = routing.runtime.settings.kafka_bootstrap
    case_id, case_no = new_case()
    async with TopicReader(bootstrap, topics.cases, topics.tasks("huanwei")) as reader:
        await publish(bootstrap, topics.cases, accepted(case_id, case_no), key=case_id)
        first = await reader.wait_for(of(case_id, "case.dispatched", occasion="first"))
        rework = CaseReworked(case_no=case_no, owner="huanwei", note="垃圾仍未清理", by="operator:desk-2").envelope(
            source="supervision", case_id=case_id)
        await publish(bootstrap, topics.cases, rework, key=case_id)
        again = await reader.wait_for(of(case_id, "case.dispatched", occasion="rework"))
        task = await reader.wait_for(of(case_id, "task.assigned", occasion="rework"))
        d = again["data"]
        assert d["owner"] == "huanwei" and d["note"] == "垃圾仍未清理" and d["previous_owner"] is None
        assert d["by"] == "system" and d["case_no"] == case_no and d["category"] == "CM04"
        assert d["time_limit"] == {"value": 4.0, "unit": "work_hours"}
        # A fresh limit: the category's 4 work hours counted from this dispatch, not from the first.
        assert datetime.fromisoformat(d["dispatched_at"]) > datetime.fromisoformat(first["data"]["dispatched_at"])
        assert datetime.fromisoformat(d["due_at"]) == await expected_due(routing, d["dispatched_at"], 4, "work_hours")
        t = task["data"]
        assert task["_topic"] == topics.tasks("huanwei") and task["_key"] == case_id
        assert t["note"] == "垃圾仍未清理" and t["due_at"] == d["due_at"] and t["owner"] == "huanwei"
        assert t["description"] == "垃圾箱破损，垃圾外溢" and t["address"] and t["media"] and t["category_name"]

        # The same case.reworked delivered again: claimed already, nothing more.
        await publish(bootstrap, topics.cases, rework, key=case_id)
        await eventually(lambda: routing.runtime.pool.fetchval(
            "SELECT count(*) = 1 FROM processed_events WHERE event_id = $1", rework.id))
        tasks = await reader.all_within(2.0, of(case_id, "task.assigned", occasion="rework"))
        dispatched = [m for _t, _k, m in reader.seen if of(case_id, "case.dispatched", occasion="rework")(m)]
        recalls = [m for _t, _k, m in reader.seen if m.get("type") == "task.recalled"]
    assert len(tasks) == 1 and len(dispatched) == 1 and recalls == []
    history = await routing.runtime.pool.fetch(
        "SELECT occasion, cause_id, owner FROM dispatches WHERE case_id = $1 ORDER BY dispatched_at", case_id)
    assert [(r["occasion"], r["owner"]) for r in history] == [("first", "huanwei"), ("rework", "huanwei")]
    assert history[1]["cause_id"] == rework.id
    assert await row(routing, case_id) == {"holder": "huanwei", "status": "open"}


async def test_a_reopened_case_goes_back_to_its_owner_with_the_residents_reason(routing: Service):
    topics = routing.runtime.topics
    bootstrap = routing.runtime.settings.kafka_bootstrap
    case_id, case_no = new_case()
    async with TopicReader(bootstrap, topics.cases, topics.tasks(COMMUNITY)) as reader:
        await publish(bootstrap, topics.cases, accepted(case_id, case_no, "MD01"), key=case_id)
        await reader.wait_for(of(case_id, "task.assigned", occasion="first", owner=COMMUNITY))
        closed = CaseClosed(case_no=case_no, owner=COMMUNITY, outcome="resolved", result="已调解", by="operator:desk-1",
                            closed_at=datetime.now(street_zone()), on_time=True)
        await publish(bootstrap, topics.cases, closed.envelope(source="supervision", case_id=case_id), key=case_id)
        await eventually(lambda: _is(routing, case_id, {"holder": None, "status": "closed"}))
        reopened = CaseReopened(case_no=case_no, owner=COMMUNITY, reason="噪音依旧", survey_id="s-1", by="resident")
        await publish(bootstrap, topics.cases, reopened.envelope(source="supervision", case_id=case_id), key=case_id)
        again = await reader.wait_for(of(case_id, "case.dispatched", occasion="reopen"))
        task = await reader.wait_for(of(case_id, "task.assigned", occasion="reopen"))
    assert again["data"]["owner"] == COMMUNITY and again["data"]["note"] == "噪音依旧"
    assert again["data"]["time_limit"] == {"value": 3.0, "unit": "work_days"}
    assert datetime.fromisoformat(again["data"]["due_at"]) == await expected_due(
        routing, again["data"]["dispatched_at"], 3, "work_days")
    assert task["_topic"] == topics.tasks(COMMUNITY) and task["data"]["note"] == "噪音依旧"
    assert task["data"]["due_at"] == again["data"]["due_at"]
    assert await row(routing, case_id) == {"holder": COMMUNITY, "status": "open"}


async def _is(routing: Service, case_id: str, expected: dict) -> bool:
    return await row(routing, case_id) == expected


async def test_a_returned_case_is_dispatched_by_hand_without_a_recall(routing: Service, http: httpx.AsyncClient):
    topics = routing.runtime.topics
    bootstrap = routing.runtime.settings.kafka_bootstrap
    case_id, case_no = new_case()
    async with TopicReader(bootstrap, topics.cases, topics.tasks("huanwei"), topics.tasks("chengguan")) as reader:
        await publish(bootstrap, topics.cases, accepted(case_id, case_no), key=case_id)
        await reader.wait_for(of(case_id, "task.assigned", owner="huanwei"))
        returned = CaseReturned(case_no=case_no, owner="huanwei", reason="占道经营归城管", update_id="u-1")
        await publish(bootstrap, topics.cases, returned.envelope(source="supervision", case_id=case_id), key=case_id)
        await eventually(lambda: _is(routing, case_id, {"holder": None, "status": "returned"}))

        answer = await dispatch(http, case_no, {"owner": "chengguan", "reason": "属占道经营，改派城管"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["owner"] == "chengguan" and body["previous_owner"] is None and body["case_no"] == case_no
        assert body["owner_name"] == "城管执法中队"
        task = await reader.wait_for(of(case_id, "task.assigned", occasion="manual"))
        dispatched = await reader.wait_for(of(case_id, "case.dispatched", occasion="manual"))
        recalls = await reader.all_within(1.5, of(case_id, "task.recalled"))
    assert task["_topic"] == topics.tasks("chengguan") and task["data"]["note"] == "属占道经营，改派城管"
    d = dispatched["data"]
    assert d["owner"] == "chengguan" and d["by"] == "operator:desk-1" and d["previous_owner"] is None
    assert d["note"] == "属占道经营，改派城管" and d["due_at"] == task["data"]["due_at"]
    assert datetime.fromisoformat(body["due_at"]) == datetime.fromisoformat(d["due_at"])
    assert recalls == []
    assert await row(routing, case_id) == {"holder": "chengguan", "status": "open"}


async def test_a_held_case_dispatched_by_hand_is_recalled_from_its_holder(routing: Service, http: httpx.AsyncClient):
    topics = routing.runtime.topics
    bootstrap = routing.runtime.settings.kafka_bootstrap
    case_id, case_no = new_case()
    async with TopicReader(bootstrap, topics.cases, topics.tasks("huanwei"), topics.tasks("chengguan")) as reader:
        await publish(bootstrap, topics.cases, accepted(case_id, case_no), key=case_id)
        await reader.wait_for(of(case_id, "task.assigned", owner="huanwei"))
        answer = await dispatch(http, case_no, {"owner": "chengguan", "reason": "环卫所人手不足"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["previous_owner"] == "huanwei" and answer.json()["owner"] == "chengguan"
        recalled = await reader.wait_for(of(case_id, "task.recalled"))
        assigned = await reader.wait_for(of(case_id, "task.assigned", occasion="manual"))
        dispatched = await reader.wait_for(of(case_id, "case.dispatched", occasion="manual"))

        # The old holder's return, arriving after the operator moved the case, changes nothing.
        late = CaseReturned(case_no=case_no, owner="huanwei", reason="不归我们", update_id="u-2").envelope(
            source="supervision", case_id=case_id)
        await publish(bootstrap, topics.cases, late, key=case_id)
        await eventually(lambda: routing.runtime.pool.fetchval(
            "SELECT count(*) = 1 FROM processed_events WHERE event_id = $1", late.id))
    assert recalled["_topic"] == topics.tasks("huanwei") and recalled["_key"] == case_id
    assert recalled["data"] == {"case_no": case_no, "owner": "huanwei", "reason": "环卫所人手不足", "new_owner": "chengguan"}
    assert assigned["_topic"] == topics.tasks("chengguan") and assigned["data"]["note"] == "环卫所人手不足"
    assert dispatched["data"]["previous_owner"] == "huanwei" and dispatched["data"]["by"] == "operator:desk-1"
    assert await row(routing, case_id) == {"holder": "chengguan", "status": "open"}


async def test_refusals_say_why_and_change_nothing(routing: Service, http: httpx.AsyncClient):
    topics = routing.runtime.topics
    bootstrap = routing.runtime.settings.kafka_bootstrap
    held_id, held_no = new_case()
    closed_id, closed_no = new_case()
    async with TopicReader(bootstrap, topics.cases) as reader:
        for case_id, case_no in ((held_id, held_no), (closed_id, closed_no)):
            await publish(bootstrap, topics.cases, accepted(case_id, case_no), key=case_id)
            await reader.wait_for(of(case_id, "case.dispatched"))
    closed = CaseClosed(case_no=closed_no, owner="huanwei", outcome="resolved", result="已更换", by="operator:desk-1",
                        closed_at=datetime.now(street_zone()), on_time=True)
    await publish(bootstrap, topics.cases, closed.envelope(source="supervision", case_id=closed_id), key=closed_id)
    await eventually(lambda: _is(routing, closed_id, {"holder": None, "status": "closed"}))
    fine = {"owner": "chengguan", "reason": "改派"}

    nobody = await dispatch(http, held_no, fine, token=None)
    assert nobody.status_code == 401 and "credential" in nobody.json()["detail"]
    unknown_token = await dispatch(http, held_no, fine, token="not-a-token")
    assert unknown_token.status_code == 401
    owner = await dispatch(http, held_no, fine, token=OWNER_TOKEN)
    assert owner.status_code == 403 and "operator" in owner.json()["detail"]
    missing = await dispatch(http, "20990101-nothing", fine)
    assert missing.status_code == 404 and "20990101-nothing" in missing.json()["detail"]
    stranger = await dispatch(http, held_no, {"owner": "nobody", "reason": "改派"})
    assert stranger.status_code == 422 and "/api/v1/owners" in stranger.json()["detail"]
    done = await dispatch(http, closed_no, fine)
    assert done.status_code == 409 and "closed" in done.json()["detail"]
    same = await dispatch(http, held_no, {"owner": "huanwei", "reason": "再派"})
    assert same.status_code == 409 and "already holds" in same.json()["detail"]
    for body in ({"owner": "chengguan"}, {"owner": "chengguan", "reason": "  "}, {"owner": "chengguan", "reason": "x" * 501}):
        bad = await dispatch(http, held_no, body)
        assert bad.status_code == 422 and "reason" in bad.json()["detail"]

    rows = await routing.runtime.pool.fetch(
        "SELECT case_id, occasion FROM dispatches WHERE case_id = ANY($1::text[])", [held_id, closed_id])
    assert sorted(r["occasion"] for r in rows) == ["first", "first"]
    assert await row(routing, held_id) == {"holder": "huanwei", "status": "open"}
    async with TopicReader(bootstrap, topics.cases, topics.tasks("huanwei"), topics.tasks("chengguan")) as reader:
        sent = await reader.all_within(2.0, lambda m: m.get("case_id") in (held_id, closed_id) and m["type"] in (
            "case.dispatched", "task.assigned", "task.recalled"))
    assert sorted(m["type"] for m in sent) == ["case.dispatched"] * 2 + ["task.assigned"] * 2  # the first dispatches only


async def test_a_rework_of_a_case_routing_never_dispatched_goes_to_the_rejected_topic(routing: Service):
    topics = routing.runtime.topics
    bootstrap = routing.runtime.settings.kafka_bootstrap
    case_id, case_no = new_case()
    rework = CaseReworked(case_no=case_no, owner="huanwei", note="未处理", by="operator:desk-1").envelope(
        source="supervision", case_id=case_id)
    async with TopicReader(bootstrap, topics.rejected_for(topics.cases)) as rejected:
        await publish(bootstrap, topics.cases, rework, key=case_id)
        got = await rejected.wait_for(lambda m: m["data"]["original"].get("id") == rework.id)
    assert got["data"]["rejected_by"] == "routing" and "never dispatched" in got["data"]["reason"]
    assert await row(routing, case_id) is None

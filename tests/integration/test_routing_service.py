"""Routing on the real broker and database: street loading, dispatch once per case, rejects, HTTP."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import AsyncIterator

import asyncpg
import httpx
import pytest

from shared.contracts import Envelope
from shared.contracts.cases import CaseAccepted
from shared.runtime import Service
from shared.settings import Settings
from services.routing.bootstrap import build
from services.routing.loading import load_into, read_street
from tests.conftest import DEMO_STREET
from tests.support import TopicReader, grant, publish, running

pytestmark = pytest.mark.integration

UNIT = "3704020010010201"  # in community 370402001001
COMMUNITY = "370402001001"
INSIDE_UNIT = (117.575168, 34.871845)  # 文化路街道市社家宿舍1号楼, in UNIT


@pytest.fixture
async def routing(isolated: Settings) -> AsyncIterator[Service]:
    """Routing started in-process on an empty schema: it loads the demo street itself."""
    async with running(build(isolated, manage_runtime=False)) as service:
        yield service


def accepted(case_id: str, category: str, unit_grid: str = UNIT, **extra: object) -> Envelope:
    body = dict(
        case_no=f"20261127-{case_id[:12]}",
        category=category,
        unit_grid=unit_grid,
        description="垃圾箱破损，垃圾外溢",
        location={"lon": INSIDE_UNIT[0], "lat": INSIDE_UNIT[1]},
        media=["https://example.org/p/1.jpg"],
    )
    body.update(extra)
    return CaseAccepted(**body).envelope(source="intake", case_id=case_id)


def new_case_id() -> str:
    return uuid.uuid4().hex


async def test_cases_go_to_the_department_or_the_community_with_the_contract_fields(routing: Service):
    topics = routing.runtime.topics
    bootstrap = routing.runtime.settings.kafka_bootstrap
    bins, dispute = new_case_id(), new_case_id()
    async with TopicReader(bootstrap, topics.cases, topics.tasks("huanwei"), topics.tasks(COMMUNITY)) as reader:
        await publish(bootstrap, topics.cases, accepted(bins, "CM04"), key=bins)
        await publish(bootstrap, topics.cases, accepted(dispute, "MD01", description="邻里噪音纠纷"), key=dispute)

        for case_id, owner, category in ((bins, "huanwei", "CM04"), (dispute, COMMUNITY, "MD01")):
            dispatched = await reader.wait_for(lambda m, c=case_id: m["type"] == "case.dispatched" and m["case_id"] == c)
            task = await reader.wait_for(lambda m, c=case_id: m["type"] == "task.assigned" and m["case_id"] == c)
            assert dispatched["_topic"] == topics.cases and dispatched["_key"] == case_id
            assert dispatched["source"] == "routing" and dispatched["version"] == 1
            d = dispatched["data"]
            assert d["owner"] == owner and d["category"] == category and d["unit_grid"] == UNIT
            assert d["priority"] == "normal" and d["owner_name"]
            due, at = datetime.fromisoformat(d["due_at"]), datetime.fromisoformat(d["dispatched_at"])
            assert due > at and at.utcoffset().total_seconds() == 8 * 3600
            assert task["_topic"] == topics.tasks(owner) and task["_key"] == case_id
            t = task["data"]
            assert t["owner"] == owner and t["case_no"] == d["case_no"] and t["category"] == category
            assert t["due_at"] == d["due_at"] and t["priority"] == "normal" and t["unit_grid"] == UNIT
            assert t["location"] == {"lon": INSIDE_UNIT[0], "lat": INSIDE_UNIT[1]} and t["media"]
            assert t["description"] and t["category_name"]
        assert (await reader.wait_for(lambda m: m.get("case_id") == bins and m["type"] == "case.dispatched"))[
            "data"]["time_limit"] == {"value": 4.0, "unit": "work_hours"}
        assert (await reader.wait_for(lambda m: m.get("case_id") == dispute and m["type"] == "case.dispatched"))[
            "data"]["time_limit"] == {"value": 3.0, "unit": "work_days"}


async def test_unknown_category_goes_to_the_command_center_with_the_reason(routing: Service):
    topics = routing.runtime.topics
    bootstrap = routing.runtime.settings.kafka_bootstrap
    case_id = new_case_id()
    async with TopicReader(bootstrap, topics.tasks("zhzx")) as reader:
        await publish(bootstrap, topics.cases, accepted(case_id, "ZZ99"), key=case_id)
        task = await reader.wait_for(lambda m: m.get("case_id") == case_id)
    assert task["data"]["owner"] == "zhzx" and "ZZ99" in task["data"]["manual_reason"]
    reason = await routing.runtime.pool.fetchval("SELECT manual_reason FROM dispatches WHERE case_id = $1", case_id)
    assert "未知类别" in reason


async def test_a_case_is_dispatched_once_whatever_is_redelivered(routing: Service):
    topics = routing.runtime.topics
    bootstrap = routing.runtime.settings.kafka_bootstrap
    case_id = new_case_id()
    first = accepted(case_id, "CM04")
    again_accepted = accepted(case_id, "CM04")  # a second acceptance of the same case: another event id
    assert again_accepted.id != first.id
    async with TopicReader(bootstrap, topics.cases, topics.tasks("huanwei")) as reader:
        await publish(bootstrap, topics.cases, first, key=case_id)
        await reader.wait_for(lambda m: m["type"] == "task.assigned" and m.get("case_id") == case_id)
        await publish(bootstrap, topics.cases, first, key=case_id)  # redelivery of the same event
        await publish(bootstrap, topics.cases, again_accepted, key=case_id)
        # Wait until routing has seen both (they are claimed), then give any duplicate time to show.
        for _ in range(100):
            claimed = await routing.runtime.pool.fetchval(
                "SELECT count(*) FROM processed_events WHERE event_id = ANY($1::text[])", [first.id, again_accepted.id]
            )
            if claimed == 2:
                break
            await asyncio.sleep(0.1)
        assert claimed == 2
        tasks = await reader.all_within(2.0, lambda m: m["type"] == "task.assigned" and m.get("case_id") == case_id)
        dispatched = [m for _t, _k, m in reader.seen if m["type"] == "case.dispatched" and m.get("case_id") == case_id]
    assert len(tasks) == 1 and len(dispatched) == 1
    rows = await routing.runtime.pool.fetch("SELECT cause_id, event_id FROM dispatches WHERE case_id = $1", case_id)
    assert len(rows) == 1 and rows[0]["cause_id"] == first.id and rows[0]["event_id"] == dispatched[0]["id"]


async def test_data_that_does_not_fit_goes_to_the_rejected_topic_and_other_types_are_ignored(routing: Service):
    topics = routing.runtime.topics
    bootstrap = routing.runtime.settings.kafka_bootstrap
    bad_id, no_case, fine_id = new_case_id(), new_case_id(), new_case_id()
    bad = Envelope.new("case.accepted", 1, {"case_no": "20261127-9", "category": "CM04"}, source="intake", case_id=bad_id)
    anonymous = accepted(no_case, "CM04").model_copy(update={"case_id": None})
    someone_elses = Envelope.new("case.signed", 1, {"anything": True}, source="supervision", case_id=fine_id)
    async with TopicReader(bootstrap, topics.rejected_for(topics.cases)) as rejected:
        await publish(bootstrap, topics.cases, bad, key=bad_id)
        await publish(bootstrap, topics.cases, anonymous, key=no_case)
        await publish(bootstrap, topics.cases, someone_elses, key=fine_id)
        got = await rejected.wait_for(lambda m: m["data"]["original"].get("id") == bad.id)
        assert got["data"]["rejected_by"] == "routing" and got["_key"] == bad_id
        assert "unit_grid" in got["data"]["reason"] and "description" in got["data"]["reason"]
        missing = await rejected.wait_for(lambda m: m["data"]["original"].get("id") == anonymous.id)
        assert "case_id" in missing["data"]["reason"]
        others = await rejected.all_within(1.0, lambda m: m["data"]["original"].get("id") == someone_elses.id)
    assert others == []
    assert await routing.runtime.pool.fetchval("SELECT count(*) FROM dispatches WHERE case_id = ANY($1::text[])",
                                               [bad_id, no_case, fine_id]) == 0


async def test_http_locates_points_and_lists_categories_and_owners(routing: Service):
    transport = httpx.ASGITransport(app=routing.app)
    await grant(routing.runtime.settings, routing, token="routing-terminal", name="终端", role="terminal",
                worker_id="W001", device_id="SZT-0001")
    async with httpx.AsyncClient(transport=transport, base_url="http://routing") as anonymous:
        for path in ("/api/v1/grids/locate?lon=117.5&lat=34.8", "/api/v1/categories", "/api/v1/owners"):
            assert (await asyncio.wait_for(anonymous.get(path), 10)).status_code == 401
    async with httpx.AsyncClient(transport=transport, base_url="http://routing",
                                 headers={"Authorization": "Bearer routing-terminal"}) as client:
        found = await asyncio.wait_for(client.get("/api/v1/grids/locate", params={"lon": INSIDE_UNIT[0], "lat": INSIDE_UNIT[1]}), 10)
        assert found.status_code == 200
        body = found.json()
        assert body["unit_grid"] == UNIT and body["foundation_grid"] == UNIT[:14] and body["community"] == COMMUNITY
        assert all(body["names"].values())
        outside = await asyncio.wait_for(client.get("/api/v1/grids/locate", params={"lon": 116.4, "lat": 39.9}), 10)
        assert outside.status_code == 404 and "不在" in outside.json()["detail"] and "not inside" in outside.json()["detail"]
        invalid = await asyncio.wait_for(client.get("/api/v1/grids/locate", params={"lon": 500, "lat": "x"}), 10)
        assert invalid.status_code == 422
        categories = (await asyncio.wait_for(client.get("/api/v1/categories"), 10)).json()
        cm04 = next(c for c in categories if c["code"] == "CM04")
        assert len(categories) == 20 and cm04["owner"] == "huanwei" and cm04["limit"] == {"value": 4.0, "unit": "work_hours"}
        owners = (await asyncio.wait_for(client.get("/api/v1/owners"), 10)).json()
        assert len(owners) == 23 and {"zhzx", "huanwei", COMMUNITY} <= {o["code"] for o in owners}
        ready = await asyncio.wait_for(client.get("/readyz"), 10)
        assert ready.status_code == 200


REFERENCE_QUERIES = {
    "street": "SELECT code, name, source_dir FROM street",
    "grids": "SELECT * FROM grids ORDER BY code",
    "addresses": "SELECT * FROM addresses ORDER BY address",
    "departments": "SELECT * FROM departments ORDER BY code",
    "categories": "SELECT * FROM categories ORDER BY code",
    "people": "SELECT * FROM people ORDER BY person_id",
    "calendar_days": "SELECT * FROM calendar_days ORDER BY day",
}


async def _reference_tables(settings: Settings) -> dict[str, list[tuple]]:
    conn = await asyncpg.connect(settings.database_url, server_settings={"search_path": settings.schema("routing")})
    try:
        return {table: [tuple(r) for r in await conn.fetch(sql)] for table, sql in REFERENCE_QUERIES.items()}
    finally:
        await conn.close()


async def test_loading_a_street_twice_gives_the_same_tables(isolated: Settings):
    street = read_street(DEMO_STREET)
    first = await asyncio.wait_for(load_into(isolated, street, DEMO_STREET), 60)
    after_first = await _reference_tables(isolated)
    second = await asyncio.wait_for(load_into(isolated, street, DEMO_STREET), 60)
    after_second = await _reference_tables(isolated)
    assert after_first == after_second
    assert first.line() == second.line() == (
        "文化路街道: 12 communities, 43 foundation, 122 unit grids, 219 addresses, 20 categories, 11 departments; "
        "23 task topics"
    )
    assert first.topics_created == 23 and second.topics_created == 0
    assert len(after_second["grids"]) == 12 + 43 + 122 and len(after_second["addresses"]) == 219


async def test_a_new_street_load_changes_where_the_next_case_goes(routing: Service, tmp_path):
    """The rules are cached in memory; a load-street is seen by the very next case."""
    import shutil

    for path in DEMO_STREET.iterdir():
        shutil.copy(path, tmp_path / path.name)
    categories = next(tmp_path.glob("*-categories.csv"))
    text = categories.read_text(encoding="utf-8")
    categories.write_text(text.replace("CM04,城市管理,垃圾箱损坏/暴露垃圾,huanwei", "CM04,城市管理,垃圾箱损坏/暴露垃圾,chengguan"),
                          encoding="utf-8")
    topics = routing.runtime.topics
    bootstrap = routing.runtime.settings.kafka_bootstrap
    before, after = new_case_id(), new_case_id()
    async with TopicReader(bootstrap, topics.cases) as reader:
        await publish(bootstrap, topics.cases, accepted(before, "CM04"), key=before)
        first = await reader.wait_for(lambda m: m["type"] == "case.dispatched" and m["case_id"] == before)
        await load_into(routing.runtime.settings, read_street(tmp_path), tmp_path)
        await publish(bootstrap, topics.cases, accepted(after, "CM04"), key=after)
        second = await reader.wait_for(lambda m: m["type"] == "case.dispatched" and m["case_id"] == after)
    assert first["data"]["owner"] == "huanwei" and second["data"]["owner"] == "chengguan"

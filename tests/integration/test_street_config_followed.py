"""One street configuration for every service, on the real broker and database: an admin changes the time
rules through supervision's admin API, supervision publishes the version on wangge.street-config, and the
services that follow it (routing, notify) count with it — so a new case's task due_at is its clock's deadline."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo
from typing import AsyncIterator

import httpx
import pytest

from services.routing.bootstrap import build as build_routing
from shared.runtime import Service
from shared.settings import Settings
from shared.street_rules import learnt_version
from shared.topics import Topics, ensure_topics
from shared.worktime import WorkCalendar
from shared.street_config import StreetConfig, from_mapping
from tests.integration.test_supervision_service import accepted, eventually, reported, send
from tests.integration.test_supervision_service import start as start_supervision
from tests.support import TopicReader, grant

pytestmark = pytest.mark.integration

OWNER = "huanwei"  # CM04 (垃圾箱损坏) is theirs, 4 work hours
# Work periods that share no moment with the default 08:30–12:00, 13:30–17:30: whenever a case comes, a
# deadline counted in them cannot be the one counted in the default periods.
NIGHT_SHIFT = [["00:00", "06:00"], ["18:00", "23:00"]]


@pytest.fixture
async def street(isolated: Settings) -> AsyncIterator[tuple[Service, Service]]:
    """Supervision and routing, in-process on one broker and database, consuming."""
    topics = Topics(isolated.topic_prefix)
    await ensure_topics(isolated.kafka_bootstrap, [topics.for_owner(OWNER)])
    supervision = await start_supervision(isolated)
    routing = build_routing(isolated, manage_runtime=False)
    try:
        await asyncio.wait_for(routing.runtime.start(), 60)
        await routing.runtime.wait_until_consuming(60)
        await grant(isolated, supervision, token="config-admin", name="管理员", role="admin")
        yield supervision, routing
    finally:
        await asyncio.wait_for(routing.runtime.stop(), 30)
        await asyncio.wait_for(supervision.runtime.stop(), 30)


async def change_config(supervision: Service, routing: Service, section: dict) -> dict:
    """PUT a change of the street configuration (the rest as it is); wait until routing has learnt it."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=supervision.app), base_url="http://supervision",
                                 headers={"Authorization": "Bearer config-admin"}, timeout=10) as admin:
        current = (await admin.get("/api/v1/admin/street-config")).json()
        changed = await admin.put("/api/v1/admin/street-config", json={**current["config"], **section})
        assert changed.status_code == 200, changed.text
    body = changed.json()
    async with routing.runtime.pool.acquire() as conn:
        await eventually(lambda: _learnt(conn, body["version"]))
    return body


async def _learnt(conn, version: int) -> bool:
    return await learnt_version(conn) >= version


async def test_after_an_admin_changes_the_work_periods_a_tasks_due_at_is_its_clocks_deadline(isolated, street):
    supervision, routing = street
    topics = Topics(isolated.topic_prefix)
    version = (await change_config(supervision, routing, {"calendar": {"periods": NIGHT_SHIFT}}))["version"]
    assert version >= 2  # the seed was 1

    case_id, case_no = f"periods-{uuid.uuid4().hex[:8]}", f"20261206-{uuid.uuid4().int % 10000:04d}"
    async with TopicReader(isolated.kafka_bootstrap, topics.cases, topics.tasks(OWNER)) as seen:
        await send(isolated, reported(case_id, case_no), accepted(case_id, case_no))
        task = await seen.wait_for(lambda m: m["type"] == "task.assigned" and m["case_id"] == case_id, 30)
        dispatched = await seen.wait_for(lambda m: m["type"] == "case.dispatched" and m["case_id"] == case_id)
    clock_due = await eventually(lambda: supervision.runtime.pool.fetchval(
        "SELECT due_at FROM clocks WHERE case_id = $1 AND kind = 'handling'", case_id), 30)

    task_due = datetime.fromisoformat(task["data"]["due_at"])
    assert task_due == clock_due
    # …and both are counted in the new periods, not the street file's.
    at = datetime.fromisoformat(dispatched["data"]["dispatched_at"])
    limit = dispatched["data"]["time_limit"]
    assert (limit["value"], limit["unit"]) == (4, "work_hours")
    zone = ZoneInfo(isolated.street_timezone)
    night = WorkCalendar(zone=zone, periods=from_mapping({"calendar": {"periods": NIGHT_SHIFT}}).periods)
    day = WorkCalendar(zone=zone, periods=StreetConfig().periods)
    assert task_due == night.deadline(at, 4, "work_hours") != day.deadline(at, 4, "work_hours")

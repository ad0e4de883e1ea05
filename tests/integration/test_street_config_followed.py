"""One street configuration for every service, on the real broker and database: an admin changes the time
rules through supervision's admin API, supervision publishes the version on wangge.street-config, and the
services that follow it (routing, notify) count with it — so a new case's task due_at is its clock's deadline,
a survey stays open for the window the admin API shows, and the statistics judge by the limits in force."""
from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from datetime import datetime, timedelta, timezone
from typing import AsyncIterator
from zoneinfo import ZoneInfo

import httpx
import pytest

from services.notify.bootstrap import build as build_notify
from services.routing.bootstrap import build as build_routing
from services.supervision.bootstrap import build as build_supervision
from shared.contracts import cases as c
from shared.contracts.common import TimeLimit
from shared.contracts.street import STREET_CONFIG_KEY, StreetConfigChanged
from shared.runtime import Service
from shared.settings import Settings
from shared.street_config import StreetConfig, from_mapping
from shared.street_rules import learnt_version
from shared.topics import Topics, ensure_topics
from shared.worktime import WorkCalendar
from tests.supervision_cases import UNIT_GRID, accepted, reported, send
from tests.supervision_cases import start as start_supervision
from tests.support import TopicReader, eventually, grant, publish, running

pytestmark = pytest.mark.integration

CST = timezone(timedelta(hours=8))
OWNER = "huanwei"  # CM04 (垃圾箱损坏) is theirs, 4 work hours
# Work periods that share no moment with the default 08:30–12:00, 13:30–17:30: whenever a case comes, a
# deadline counted in them cannot be the one counted in the default periods.
NIGHT_SHIFT = [["00:00", "06:00"], ["18:00", "23:00"]]


@pytest.fixture
async def street(isolated: Settings) -> AsyncIterator[tuple[Service, Service, Service]]:
    """Supervision, routing and notify, in-process on one broker and database, consuming."""
    topics = Topics(isolated.topic_prefix)
    await ensure_topics(isolated.kafka_bootstrap, [topics.for_owner(OWNER)])
    async with AsyncExitStack() as stack:  # started in this order, stopped in the reverse
        supervision, routing, notify = [await stack.enter_async_context(running(build(isolated, manage_runtime=False)))
                                        for build in (build_supervision, build_routing, build_notify)]
        await grant(isolated, supervision, token="config-admin", name="管理员", role="admin")
        yield supervision, routing, notify


async def change_config(supervision: Service, followers: list[Service], section: dict) -> dict:
    """PUT a change of the street configuration (the rest as it is); wait until every follower has learnt it."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=supervision.app), base_url="http://supervision",
                                 headers={"Authorization": "Bearer config-admin"}, timeout=10) as admin:
        current = (await admin.get("/api/v1/admin/street-config")).json()
        changed = await admin.put("/api/v1/admin/street-config", json={**current["config"], **section})
        assert changed.status_code == 200, changed.text
    body = changed.json()
    for follower in followers:
        async with follower.runtime.pool.acquire() as conn:
            await eventually(lambda: _learnt(conn, body["version"]))
    return body


async def admin_view(supervision: Service) -> dict:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=supervision.app), base_url="http://supervision",
                                 headers={"Authorization": "Bearer config-admin"}, timeout=10) as admin:
        return (await admin.get("/api/v1/admin/street-config")).json()


async def _learnt(conn, version: int) -> bool:
    return await learnt_version(conn) >= version


async def test_after_an_admin_changes_the_work_periods_a_tasks_due_at_is_its_clocks_deadline(isolated, street):
    supervision, routing, _notify = street
    topics = Topics(isolated.topic_prefix)
    version = (await change_config(supervision, [routing], {"calendar": {"periods": NIGHT_SHIFT}}))["version"]
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


async def test_notify_keeps_a_survey_open_for_the_window_in_force(isolated, street):
    supervision, _routing, notify = street
    assert (await admin_view(supervision))["config"]["survey"]["window_days"] == 7  # the street file's
    await change_config(supervision, [notify], {"survey": {"window_days": 2}})

    case_id, case_no = f"survey-{uuid.uuid4().hex[:8]}", f"20261206-{uuid.uuid4().int % 10000:04d}"
    closed_at = datetime(2026, 12, 4, 16, 0, tzinfo=CST)
    closed = c.CaseClosed(case_no=case_no, owner=OWNER, outcome="resolved", result="已更换", by="operator:值班员",
                          closed_at=closed_at, on_time=True).envelope(source="supervision", case_id=case_id)
    await send(isolated, reported(case_id, case_no), accepted(case_id, case_no), closed)
    closes_at = await eventually(lambda: notify.runtime.pool.fetchval(
        "SELECT closes_at FROM surveys WHERE case_id = $1", case_id), 30)
    assert closes_at == closed_at + timedelta(days=2)


async def test_the_statistics_judge_by_the_sign_limit_in_force(isolated):
    # Supervision alone: its statistics follow its own live configuration (routing would dispatch the case again).
    supervision = await start_supervision(isolated)
    try:
        await grant(isolated, supervision, token="config-admin", name="管理员", role="admin")
        await _statistics_follow_the_sign_limit(isolated, supervision)
    finally:
        await asyncio.wait_for(supervision.runtime.stop(), 30)


async def _statistics_follow_the_sign_limit(isolated: Settings, supervision: Service) -> None:
    # Wed 2026-11-25: dispatched 10:00, signed 14:00 = 10:00–12:00 + 13:30–14:00, 2.5 work hours: late for the
    # street file's 2 work hours, in time for 3.
    case_id, case_no = f"signed-{uuid.uuid4().hex[:8]}", "20261125-0901"
    dispatched_at = datetime(2026, 11, 25, 10, 0, tzinfo=CST)
    case = [
        reported(case_id, case_no),
        accepted(case_id, case_no),
        c.CaseDispatched(case_no=case_no, owner=OWNER, category="CM04", unit_grid=UNIT_GRID, priority="normal",
                         time_limit=TimeLimit(value=4, unit="work_hours"), dispatched_at=dispatched_at,
                         due_at=datetime(2026, 11, 25, 15, 30, tzinfo=CST)).envelope(
            source="routing", case_id=case_id, occurred_at=dispatched_at),
        c.CaseSigned(case_no=case_no, owner=OWNER, update_id="u-sign").envelope(
            source="supervision", case_id=case_id, occurred_at=datetime(2026, 11, 25, 14, 0, tzinfo=CST)),
    ]
    await send(isolated, *case)
    await eventually(lambda: supervision.runtime.pool.fetchval(
        "SELECT state = 'in_progress' FROM cases WHERE case_id = $1", case_id), 30)
    await grant(isolated, supervision, token="config-operator", name="值班员", role="operator")

    async def signed_on_time() -> int:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=supervision.app), base_url="http://supervision",
                                     headers={"Authorization": "Bearer config-operator"}, timeout=20) as http:
            answer = await http.get("/api/v1/stats", params={"from": "2026-11-25", "to": "2026-11-25", "by": "owner"})
        assert answer.status_code == 200, answer.text
        [row] = [r for r in answer.json()["rows"] if r["key"] == OWNER]
        return row["signed_on_time"]

    assert await signed_on_time() == 0
    # The day is kept under the old limit meanwhile: a change must not leave it counted that way.
    await supervision.app.state.street_figures.refresh()
    await change_config(supervision, [], {"stages": {"sign": {"value": 3, "unit": "work_hours"}}})
    assert await signed_on_time() == 1


async def test_a_configuration_that_does_not_parse_is_rejected_with_its_reasons_and_changes_nothing(isolated, street):
    _supervision, routing, notify = street
    topics = Topics(isolated.topic_prefix)
    before = [await learnt_version(service.runtime.pool) for service in (routing, notify)]
    broken = StreetConfigChanged(street_version=99, config={"calendar": {"periods": [["12:00", "08:00"]]}},
                                 changed_by="someone").envelope(source="test")
    async with TopicReader(isolated.kafka_bootstrap, topics.rejected_for(topics.street_config)) as rejected:
        await publish(isolated.kafka_bootstrap, topics.street_config, broken, key=STREET_CONFIG_KEY)
        told = [await rejected.wait_for(lambda m: m["data"]["original"]["id"] == broken.id
                                        and m["source"] == service, 30) for service in ("routing", "notify")]
    assert all("calendar.periods[0]: starts at 12:00, not before its end 08:00" in m["data"]["reason"] for m in told)
    assert [await learnt_version(service.runtime.pool) for service in (routing, notify)] == before


async def test_one_change_of_the_work_periods_and_the_survey_window_is_followed_by_all_four(isolated, street):
    """Issue 17's check: one PUT changes the work periods and the survey window; then routing's next task, supervision's
    clock, the statistics (签收 on time, counted in work time) and notify's survey all follow it."""
    supervision, routing, notify = street
    topics = Topics(isolated.topic_prefix)
    changed = await change_config(supervision, [routing, notify],
                                  {"calendar": {"periods": NIGHT_SHIFT}, "survey": {"window_days": 3}})
    assert changed["config"]["calendar"]["periods"] == NIGHT_SHIFT and changed["config"]["survey"]["window_days"] == 3
    sign = changed["config"]["stages"]["sign"]
    zone = ZoneInfo(isolated.street_timezone)
    night = WorkCalendar(zone=zone, periods=from_mapping({"calendar": {"periods": NIGHT_SHIFT}}).periods)
    day = WorkCalendar(zone=zone, periods=StreetConfig().periods)

    # Routing: a new case's task is due when the night periods say; supervision's clock at the same instant.
    case_id, case_no = f"all4-{uuid.uuid4().hex[:8]}", f"20261206-{uuid.uuid4().int % 10000:04d}"
    async with TopicReader(isolated.kafka_bootstrap, topics.cases, topics.tasks(OWNER)) as seen:
        await send(isolated, reported(case_id, case_no), accepted(case_id, case_no))
        task = await seen.wait_for(lambda m: m["type"] == "task.assigned" and m["case_id"] == case_id, 30)
        dispatched = await seen.wait_for(lambda m: m["type"] == "case.dispatched" and m["case_id"] == case_id)
    at = datetime.fromisoformat(dispatched["data"]["dispatched_at"])
    task_due = datetime.fromisoformat(task["data"]["due_at"])
    assert task_due == night.deadline(at, 4, "work_hours") != day.deadline(at, 4, "work_hours")
    clock_due = await eventually(lambda: supervision.runtime.pool.fetchval(
        "SELECT due_at FROM clocks WHERE case_id = $1 AND kind = 'handling'", case_id), 30)
    assert clock_due == task_due
    # …and the owner's task page counts the work time left in the same periods.
    await grant(isolated, supervision, token="all4-owner", name="环卫所", role="owner", owner_code=OWNER)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=supervision.app), base_url="http://supervision",
                                 headers={"Authorization": "Bearer all4-owner"}, timeout=20) as owner:
        before = datetime.now(zone)
        shown = await owner.get(f"/api/v1/tasks/{case_no}")
        after = datetime.now(zone)
    assert shown.status_code == 200, shown.text
    left = shown.json()["work_seconds_left"]
    assert night.work_seconds_between(after, task_due) <= left <= night.work_seconds_between(before, task_due)
    # The day periods would show another figure, except at moments when both leave the same work time before the due
    # (in the day's lunch break before an evening due, both leave four hours): nothing to tell apart then.
    if day.work_seconds_between(before, task_due) != night.work_seconds_between(before, task_due):
        assert not day.work_seconds_between(after, task_due) <= left <= day.work_seconds_between(before, task_due)

    # Statistics: signed between the sign-off deadline of the one calendar and that of the other, so the night
    # periods and the day periods judge it differently; the figure must be the night periods' judgement.
    by_night, by_day = (cal.deadline(at, sign["value"], sign["unit"]) for cal in (night, day))
    signed_at = min(by_night, by_day) + (max(by_night, by_day) - min(by_night, by_day)) / 2
    on_time_by_night = int(signed_at <= by_night)
    assert on_time_by_night != int(signed_at <= by_day)
    closed_at = signed_at + timedelta(hours=1)
    await send(isolated,
               c.CaseSigned(case_no=case_no, owner=OWNER, update_id="all4-sign").envelope(
                   source="supervision", case_id=case_id, occurred_at=signed_at),
               c.CaseResolved(case_no=case_no, owner=OWNER, result="已更换", update_id="all4-resolve").envelope(
                   source="supervision", case_id=case_id, occurred_at=signed_at + timedelta(minutes=30)),
               c.CaseClosed(case_no=case_no, owner=OWNER, outcome="resolved", result="已更换", by="operator:值班员",
                            closed_at=closed_at, on_time=True).envelope(
                   source="supervision", case_id=case_id, occurred_at=closed_at))
    await eventually(lambda: supervision.runtime.pool.fetchval(
        "SELECT state = 'closed' FROM cases WHERE case_id = $1", case_id), 30)
    await grant(isolated, supervision, token="all4-operator", name="值班员", role="operator")
    day_of_dispatch = at.astimezone(zone).date().isoformat()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=supervision.app), base_url="http://supervision",
                                 headers={"Authorization": "Bearer all4-operator"}, timeout=20) as http:
        answer = await http.get("/api/v1/stats", params={"from": day_of_dispatch, "to": day_of_dispatch, "by": "owner"})
    assert answer.status_code == 200, answer.text
    [row] = [r for r in answer.json()["rows"] if r["key"] == OWNER]
    assert (row["dispatched"], row["signed_on_time"]) == (1, on_time_by_night)

    # Notify: the survey of the closed case stays open for the window in force, 3 days, not the file's 7.
    closes_at = await eventually(lambda: notify.runtime.pool.fetchval(
        "SELECT closes_at FROM surveys WHERE case_id = $1", case_id), 30)
    assert closes_at == closed_at + timedelta(days=3)

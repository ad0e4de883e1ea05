"""Supervision on the real Kafka and PostgreSQL: read model, clocks, deadlines that fire once, HTTP."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest

from shared.clock import now
from shared.contracts import Envelope
from shared.contracts.cases import CaseReturned
from shared.contracts.common import TimeLimit
from shared.runtime import Service
from shared.topics import Topics, ensure_topics
from shared.worktime import WorkCalendar
from tests.conftest import drop_schemas
from tests.support import TopicReader, eventually, grant
from tests.supervision_cases import COMMUNITY, UNIT_GRID, accepted, dispatched, reported, send, start

pytestmark = pytest.mark.integration

async def test_case_events_fold_into_the_read_model_with_history_clock_and_http(isolated):
    service = await start(isolated)
    pool = service.runtime.pool
    try:
        case_id, case_no = "case-fold-1", "20261128-0001"
        at = now().replace(microsecond=0)
        calendar = WorkCalendar(zone=at.tzinfo)
        due = calendar.deadline(at, 4, "work_hours")
        dispatch = dispatched(case_id, case_no, owner="huanwei", category="CM04",
                              limit=TimeLimit(value=4, unit="work_hours"), at=at, due=due)
        late_accept = accepted(case_id, case_no)  # after dispatch: refused by the state, kept in history
        # A type no contract defines goes to wangge.cases.rejected (shared/consumer.py), not into the history.
        future_type = Envelope.new("case.photographed", 1, {"case_no": case_no}, source="camera", case_id=case_id)
        await send(isolated, reported(case_id, case_no), accepted(case_id, case_no), dispatch, dispatch,
                   late_accept, future_type)

        case = await eventually(lambda: pool.fetchrow(
            "SELECT * FROM cases WHERE case_id = $1 AND events_seen = 4", case_id))
        assert case["case_no"] == case_no and case["state"] == "dispatched"
        assert (case["owner"], case["category"], case["unit_grid"]) == ("huanwei", "CM04", UNIT_GRID)
        assert case["reported_at"] and case["accepted_at"] and case["dispatched_at"] == at and case["due_at"] == due
        history = await pool.fetch("SELECT type, effect, note FROM case_events WHERE case_id = $1 ORDER BY seq", case_id)
        assert [(h["type"], h["effect"]) for h in history] == [
            ("case.reported", "moved"), ("case.accepted", "moved"), ("case.dispatched", "moved"),
            ("case.accepted", "refused"),
        ]  # the second delivery of the same dispatch was applied once
        assert "not allowed in state dispatched" in history[3]["note"]

        # The dispatch stage (report → dispatch within 1 work hour) ran on the command center and stopped.
        stage = await pool.fetchrow("SELECT * FROM clocks WHERE case_id = $1 AND kind = 'dispatch'", case_id)
        assert (stage["state"], stage["owner"], stage["stop_reason"]) == ("stopped", "zhzx", "dispatched")
        clock = await pool.fetchrow("SELECT * FROM clocks WHERE case_id = $1 AND kind = 'handling'", case_id)
        assert (clock["kind"], clock["state"], clock["owner"]) == ("handling", "running", "huanwei")
        assert clock["started_at"] == at and clock["due_at"] == due
        assert clock["warn_at"] == calendar.point_in_limit(at, 4, "work_hours", 0.75)
        assert clock["warned_at"] is None and clock["overdue_at"] is None

        await grant(isolated, service, token="fold-operator", name="值班员", role="operator")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://t",
                                     headers={"Authorization": "Bearer fold-operator"}) as http:
            got = await asyncio.wait_for(http.get(f"/api/v1/cases/{case_no}"), 10)
            assert got.status_code == 200, got.text
            body = got.json()
            assert body["state"] == "dispatched" and body["clock"]["state"] == "running"
            assert body["due_at"] == due.isoformat() and body["due_at"].endswith("+08:00")
            assert [h["type"] for h in body["history"]][:3] == ["case.reported", "case.accepted", "case.dispatched"]
            assert body["history"][2]["data"]["owner"] == "huanwei"

            missing = await asyncio.wait_for(http.get("/api/v1/cases/19990101-0000"), 10)
            assert missing.status_code == 404 and "19990101-0000" in missing.json()["detail"]

            listed = (await asyncio.wait_for(http.get("/api/v1/cases", params={"state": "dispatched", "owner": "huanwei"}), 10)).json()
            assert [c["case_no"] for c in listed["cases"]] == [case_no]
            bad = await asyncio.wait_for(http.get("/api/v1/cases", params={"state": "lost"}), 10)
            assert bad.status_code == 422 and "state" in bad.json()["detail"]

            stats = (await asyncio.wait_for(http.get("/api/v1/stats/summary"), 10)).json()
            assert stats["by_state"] == {"dispatched": 1} and stats["running_clocks"] == 1 and stats["overdue_now"] == 0
            assert stats["on_time_share"] is None
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)


async def test_an_unseen_case_is_created_and_a_redispatch_after_return_replaces_the_clock(isolated):
    service = await start(isolated)
    pool = service.runtime.pool
    try:
        case_id, case_no = "case-replay-1", "20261128-0002"
        at = now().replace(microsecond=0)
        limit = TimeLimit(value=2, unit="work_days")
        # A replay from the middle: the first event supervision sees of this case is its dispatch.
        await send(isolated, dispatched(case_id, case_no, owner="chengguan", category="CM02", limit=limit,
                                        at=at, due=at + timedelta(days=3)))
        first = await eventually(lambda: pool.fetchrow(
            "SELECT state, opened_by FROM clocks WHERE case_id = $1 AND kind = 'handling'", case_id))
        assert first["state"] == "running"
        assert await pool.fetchval("SELECT state FROM cases WHERE case_id = $1", case_id) == "dispatched"

        # 回退, as supervision decides it from the owner's task.returned.
        returned = CaseReturned(case_no=case_no, owner="chengguan", reason="不属本单位", update_id="u-1") \
            .envelope(source="supervision", case_id=case_id)
        await send(isolated, returned)
        stopped = await eventually(lambda: pool.fetchrow(
            "SELECT * FROM clocks WHERE case_id = $1 AND kind = 'handling' AND state = 'stopped'", case_id))
        assert stopped["stop_reason"] == "returned" and stopped["stopped_at"] == returned.occurred_at

        again = dispatched(case_id, case_no, owner="huanwei", category="CM04", limit=limit,
                           at=at + timedelta(hours=1), due=at + timedelta(days=4))
        await send(isolated, again)
        clock = await eventually(lambda: pool.fetchrow(
            "SELECT * FROM clocks WHERE case_id = $1 AND kind = 'handling' AND state = 'running' AND opened_by = $2", case_id, again.id))
        assert clock["owner"] == "huanwei" and clock["due_at"] == at + timedelta(days=4) and clock["stopped_at"] is None
        assert await pool.fetchval("SELECT count(*) FROM clocks WHERE case_id = $1 AND kind = 'handling'", case_id) == 1
        case = await pool.fetchrow("SELECT state, owner FROM cases WHERE case_id = $1", case_id)
        assert (case["state"], case["owner"]) == ("dispatched", "huanwei")
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)


async def test_past_deadlines_fire_once_across_two_instances(make_settings, tmp_path):
    # Both instances poll every 50 ms, so they really compete for the same clocks. Only the handling clocks
    # are under test here: the sign stage gets a limit that never comes (tests/integration/
    # test_supervision_time_rules.py has the stages and the ladder).
    (tmp_path / "test-config.toml").write_text('[stages]\nsign = { value = 1000, unit = "work_days" }\n'
                                               '[escalation]\ninterval = { value = 1000, unit = "work_days" }\n')
    settings = make_settings(deadline_poll_seconds=0.05, street_config_dir=tmp_path)
    topics = Topics(settings.topic_prefix)
    owners = ["huanwei", COMMUNITY]
    await asyncio.wait_for(ensure_topics(settings.kafka_bootstrap, topics.fixed() + [topics.for_owner(o) for o in owners]), 30)
    services: list[Service] = []
    try:
        services.append(await start(settings))
        services.append(await start(settings))
        await services[1].runtime.wait_until_consuming(60)  # the rebalance that included the second
        at = now().replace(microsecond=0) - timedelta(hours=3)
        # (case id, case no, owner, category): a department, a community, a category the street does not know.
        cases = [("case-late-1", "20261128-0101", "huanwei", "CM04"),
                 ("case-late-2", "20261128-0102", COMMUNITY, "MD01"),
                 ("case-late-3", "20261128-0103", "huanwei", "ZZ99")]
        # More clocks due at once make a double firing likely if claiming were not exclusive.
        cases += [(f"case-late-{n}", f"20261128-01{n:02d}", "huanwei", "CM04") for n in range(4, 11)]
        async with TopicReader(settings.kafka_bootstrap, topics.cases, *(topics.tasks(o) for o in owners)) as reader:
            for case_id, case_no, owner, category in cases:
                # 2 calendar hours from three hours ago: the reminder (1.5 h) and the deadline (2 h) have passed.
                await send(settings, dispatched(case_id, case_no, owner=owner, category=category,
                                                limit=TimeLimit(value=2, unit="hours"), at=at, due=at + timedelta(hours=2)))
            for case_id, *_ in cases:
                for kind in ("case.warned", "case.overdue", "case.escalated"):
                    await reader.wait_for(lambda m, c=case_id, k=kind: m.get("type") == k and m.get("case_id") == c, 30)
                for level in ("reminder", "overdue"):
                    await reader.wait_for(lambda m, c=case_id, lv=level: m.get("type") == "task.urged"
                                          and m.get("case_id") == c and m["data"]["level"] == lv, 30)
            # Give both pollers time to fire anything twice, then count.
            fired = await reader.all_within(2.0, lambda m: m.get("source") == "supervision")

        counts: dict[tuple, int] = {}
        for m in fired:
            key = (m["case_id"], m["type"], m["data"].get("level"), m["_topic"])
            counts[key] = counts.get(key, 0) + 1
        assert all(n == 1 for n in counts.values()), counts
        # warned, overdue, escalated on wangge.cases; urged ×2 and escalated on the owner's topic.
        assert len(counts) == 6 * len(cases)
        by = {(m["case_id"], m["type"], m["data"].get("level")): m for m in fired}
        for case_id, case_no, owner, category in cases:
            for m in fired:
                if m["case_id"] == case_id:
                    assert m["_key"] == case_id
                    assert m["_topic"] == (topics.tasks(owner) if m["type"].startswith("task.") else topics.cases)
            assert by[(case_id, "case.escalated", "command_center")]["data"]["owner"] == owner
        reminder = by[("case-late-1", "task.urged", "reminder")]["data"]["text"]
        due_local = (at + timedelta(hours=2)).astimezone(at.tzinfo)
        assert reminder == (f"【催办】案件20261128-0101（垃圾箱损坏/暴露垃圾）将于"
                            f"{due_local.month}月{due_local.day}日{due_local:%H:%M}到期，请抓紧处置。")
        assert "【督办】案件20261128-0103（ZZ99）" in by[("case-late-3", "task.urged", "overdue")]["data"]["text"]
        assert "（邻里纠纷）" in by[("case-late-2", "task.urged", "overdue")]["data"]["text"]

        pool = services[0].runtime.pool
        clocks = await pool.fetch("SELECT * FROM clocks WHERE kind = 'handling' ORDER BY case_id")
        assert [(c["state"], c["escalation_level"]) for c in clocks] == [("running", "command_center")] * len(cases)
        assert all(c["warned_at"] and c["overdue_at"] for c in clocks)
        # supervision reads its own events back from wangge.cases into the read model and history.
        await eventually(lambda: pool.fetchval(
            "SELECT count(*) = $1 FROM cases WHERE warned_at IS NOT NULL AND overdue_at IS NOT NULL "
            "AND escalation_level = 'command_center'", len(cases)))
        noted = await pool.fetchval("SELECT count(*) FROM case_events WHERE effect = 'noted'")
        assert noted == 3 * len(cases)
    finally:
        for service in services:
            await asyncio.wait_for(service.runtime.stop(), 30)
        await drop_schemas(settings)

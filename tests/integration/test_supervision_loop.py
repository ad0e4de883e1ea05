"""Supervision's part of the closed loop on the real Kafka and PostgreSQL: owners' updates (Kafka and HTTP),
refusals on the owner's topic, the on-site check, extensions, suspension with the clock stopped, and a
resident's unsatisfied answer reopening the case."""
from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
import pytest

from shared.clock import move_clock, now
from shared.contracts import Envelope
from shared.contracts.cases import CaseReported, CaseSurveyAnswered
from shared.contracts.common import TimeLimit
from shared.contracts.tasks import TaskAccepted, TaskExtensionRequested, TaskProgress, TaskResolved
from shared.topics import Topics, ensure_topics
from tests.conftest import drop_schemas
from tests.supervision_cases import (OTHER, OWNER, accepted, dispatched, http, open_case, reported, send, start,
                                     state_of, update)
from tests.support import TopicReader, eventually, grant

pytestmark = pytest.mark.integration


async def test_owner_updates_on_kafka_move_the_case_and_refusals_reach_the_owner(isolated):
    topics = Topics(isolated.topic_prefix)
    await ensure_topics(isolated.kafka_bootstrap, [topics.for_owner(OWNER), topics.for_owner(OTHER)])
    service = await start(isolated)
    pool = service.runtime.pool
    try:
        await grant(isolated, service, token="loop-operator", name="值班员", role="operator")
        case_id, case_no = await open_case(isolated, pool)
        async with TopicReader(isolated.kafka_bootstrap, topics.cases, topics.tasks(OWNER), topics.tasks(OTHER)) as seen:
            # Resolved before signing: refused on the owner's topic, nothing applied.
            early = await update(isolated, case_id, TaskResolved(case_no=case_no, owner=OWNER, result="已处理"))
            refused = await seen.wait_for(lambda m: m["type"] == "task.update-refused"
                                          and m["data"]["update_id"] == early.id)
            assert refused["_topic"] == topics.tasks(OWNER) and refused["_key"] == case_id
            assert "sign it first" in refused["data"]["reason"] and refused["data"]["update_type"] == "task.resolved"
            # Another owner's update of this task: refused on that owner's topic, telling nothing of the holder.
            stranger = await update(isolated, case_id, TaskAccepted(case_no=case_no, owner=OTHER))
            told = await seen.wait_for(lambda m: m["type"] == "task.update-refused" and m["data"]["update_id"] == stranger.id)
            assert told["_topic"] == topics.tasks(OTHER) and OWNER not in told["data"]["reason"]
            # An unknown case: held for its dispatch (it may have overtaken the case log), refused after the bound
            # (tests/integration/test_held_updates.py).
            ghost = await update(isolated, "no-such-case", TaskAccepted(case_no="19990101-0001", owner=OWNER))
            await eventually(lambda: pool.fetchval("SELECT count(*) = 1 FROM held_updates WHERE update_id = $1",
                                                   ghost.id))
            move_clock(now() + timedelta(seconds=isolated.held_update_seconds + 1))
            try:
                assert await asyncio.wait_for(service.app.state.updates.expire_held(), 10) == 1
            finally:
                move_clock(None)
            unknown = await seen.wait_for(lambda m: m["type"] == "task.update-refused" and m["data"]["update_id"] == ghost.id)
            assert "no case 19990101-0001 is known" in unknown["data"]["reason"]

            # 签收 twice with the same id: one case.signed.
            sign = TaskAccepted(case_no=case_no, owner=OWNER)
            await update(isolated, case_id, sign, update_id=f"sign-{case_id}")
            await update(isolated, case_id, sign, update_id=f"sign-{case_id}")
            await update(isolated, case_id, TaskProgress(case_no=case_no, owner=OWNER, note="已联系清运车辆"))
            await update(isolated, case_id, TaskResolved(case_no=case_no, owner=OWNER, result="已更换新垃圾箱",
                                                         media=["https://img.example.org/after.jpg"]))
            await state_of(pool, case_id, "resolved")

            async with http(service, "loop-operator") as operator:
                passed = await asyncio.wait_for(operator.post(f"/api/v1/cases/{case_no}/check",
                                                              json={"passed": True, "note": "现场核查已整改"}), 10)
                assert passed.status_code == 200, passed.text
                assert passed.json()["state"] == "closed"
                again = await asyncio.wait_for(operator.post(f"/api/v1/cases/{case_no}/check", json={"passed": True}), 10)
                assert again.status_code == 409 and "closed" in again.json()["detail"]
            closed = await seen.wait_for(lambda m: m["type"] == "case.closed" and m["case_id"] == case_id)
            assert closed["data"]["outcome"] == "resolved" and closed["data"]["result"] == "已更换新垃圾箱"
            assert closed["data"]["on_time"] is True and closed["data"]["by"] == "operator:值班员"

            late = await update(isolated, case_id, TaskProgress(case_no=case_no, owner=OWNER, note="补充材料"))
            after = await seen.wait_for(lambda m: m["type"] == "task.update-refused" and m["data"]["update_id"] == late.id)
            assert "closed" in after["data"]["reason"]
            mine = await seen.all_within(1.0, lambda m: m.get("case_id") == case_id and m["_topic"] == topics.cases
                                         and m["source"] == "supervision")
        assert [m["type"] for m in mine] == ["case.signed", "case.progress-reported", "case.resolved", "case.closed"]
        assert all(m["_key"] == case_id for m in mine)
        # Every update is in the history in order; the resolution's clock stopped at resolution, on time.
        clock = await pool.fetchrow("SELECT state, stop_reason FROM clocks WHERE case_id = $1 AND kind = 'handling'", case_id)
        assert (clock["state"], clock["stop_reason"]) == ("stopped", "resolved")
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)


async def test_owners_over_http_see_and_update_only_their_own_tasks(isolated):
    topics = Topics(isolated.topic_prefix)
    await ensure_topics(isolated.kafka_bootstrap, [topics.for_owner(OWNER), topics.for_owner(OTHER)])
    service = await start(isolated)
    pool = service.runtime.pool
    try:
        for token, role, code in (("own-hw", "owner", OWNER), ("own-cg", "owner", OTHER), ("op", "operator", None)):
            await grant(isolated, service, token=token, name=token, role=role, owner_code=code)
        case_id, case_no = await open_case(isolated, pool)
        async with http(service, "own-hw") as owner, http(service, "own-cg") as other, http(service, "op") as operator:
            listed = (await owner.get("/api/v1/tasks")).json()
            assert listed["owner"] == OWNER and [t["case_no"] for t in listed["tasks"]] == [case_no]
            assert (await other.get("/api/v1/tasks")).json()["tasks"] == []
            assert (await operator.get("/api/v1/tasks")).status_code == 403
            anonymous = httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://s")
            async with anonymous:
                assert (await anonymous.get("/api/v1/tasks")).status_code == 401
                assert (await anonymous.get(f"/api/v1/cases/{case_no}")).status_code == 401

            url = f"/api/v1/tasks/{case_no}/updates"
            assert (await other.post(url, json={"type": "task.accepted"})).status_code == 404  # not yours
            assert (await owner.post("/api/v1/tasks/19990101-0001/updates", json={"type": "task.accepted"})).status_code == 404
            bad = await owner.post(url, json={"type": "task.fixed"})
            assert bad.status_code == 422 and "task.accepted" in bad.json()["detail"]
            missing = await owner.post(url, json={"type": "task.resolved"})
            assert missing.status_code == 422 and "result" in missing.json()["detail"]
            early = await owner.post(url, json={"type": "task.explained", "explanation": "需协调"})
            assert early.status_code == 409 and "sign it first" in early.json()["detail"]

            signed = await owner.post(url, json={"type": "task.accepted", "id": "http-sign-1"})
            assert signed.status_code == 200 and signed.json()["state"] == "in_progress"
            repeat = await owner.post(url, json={"type": "task.accepted", "id": "http-sign-1"})
            assert repeat.status_code == 200 and repeat.json()["duplicate"] is True
            explained = await owner.post(url, json={"type": "task.explained",
                                                    "explanation": "该路段计划明年改造，届时一并更换"})
            assert explained.status_code == 200 and explained.json()["state"] == "explained"

            # An explained case passes its check and closes as explained.
            checked = await operator.post(f"/api/v1/cases/{case_no}/check", json={"passed": True})
            assert checked.status_code == 200 and checked.json()["state"] == "closed"
            view = (await operator.get(f"/api/v1/cases/{case_no}")).json()
            assert view["close_outcome"] == "explained" and view["explanation"].startswith("该路段")
            assert [h["type"] for h in view["history"]][-3:] == ["case.signed", "case.explained", "case.closed"]
            assert (await owner.get("/api/v1/tasks")).json()["tasks"] == []
        assert await pool.fetchval("SELECT count(*) FROM case_events WHERE case_id = $1 AND type = 'case.signed'",
                                   case_id) == 1
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)


async def test_suspension_stops_the_clock_and_extensions_and_checks_are_decided(isolated):
    topics = Topics(isolated.topic_prefix)
    await ensure_topics(isolated.kafka_bootstrap, [topics.for_owner(OWNER)])
    service = await start(isolated)
    pool = service.runtime.pool
    try:
        await grant(isolated, service, token="own-hw", name="环卫所", role="owner", owner_code=OWNER)
        await grant(isolated, service, token="op", name="值班员", role="operator")
        case_id, case_no = await open_case(isolated, pool, limit=TimeLimit(value=4, unit="hours"))
        url = f"/api/v1/tasks/{case_no}/updates"
        async with http(service, "own-hw") as owner, http(service, "op") as operator, \
                TopicReader(isolated.kafka_bootstrap, topics.tasks(OWNER)) as tasks:
            assert (await owner.post(url, json={"type": "task.accepted"})).status_code == 200
            before = await pool.fetchval("SELECT due_at FROM clocks WHERE case_id = $1 AND kind = 'handling'", case_id)

            # 挂起 for a while: the clock stops; resuming restarts it with the time that was left.
            suspended = await owner.post(url, json={"type": "task.suspended", "reason": "等待居民在家"})
            assert suspended.status_code == 200 and suspended.json()["state"] == "suspended"
            stopped = await pool.fetchrow("SELECT * FROM clocks WHERE case_id = $1 AND kind = 'handling'", case_id)
            assert stopped["state"] == "suspended"
            left = stopped["due_left_s"]
            assert abs(left - (before - stopped["suspended_at"]).total_seconds()) < 0.01
            assert (await owner.post(url, json={"type": "task.resolved", "result": "x"})).status_code == 409
            await asyncio.sleep(1.5)
            resumed = await operator.post(f"/api/v1/cases/{case_no}/resume")
            assert resumed.status_code == 200 and resumed.json()["state"] == "in_progress"
            clock = await pool.fetchrow("SELECT * FROM clocks WHERE case_id = $1 AND kind = 'handling'", case_id)
            assert clock["state"] == "running"
            assert clock["due_at"] - before >= timedelta(seconds=1.4)  # moved by the time it stood still
            view = (await operator.get(f"/api/v1/cases/{case_no}")).json()
            assert view["due_at"] == clock["due_at"].isoformat()

            # 延期: requested, denied (the old deadline stands), requested again, approved (a new one).
            nothing = await operator.post(f"/api/v1/cases/{case_no}/extension", json={"approved": True})
            assert nothing.status_code == 409 and "no extension request" in nothing.json()["detail"]
            want = clock["due_at"] + timedelta(days=2)
            too_soon = await owner.post(url, json={"type": "task.extension-requested", "until": clock["due_at"].isoformat(),
                                                   "reason": "x"})
            assert too_soon.status_code == 422
            asked = await owner.post(url, json={"type": "task.extension-requested", "until": want.isoformat(),
                                                "reason": "需采购配件"})
            assert asked.status_code == 200
            denied = await operator.post(f"/api/v1/cases/{case_no}/extension", json={"approved": False, "note": "请按期办结"})
            assert denied.status_code == 200
            assert await pool.fetchval("SELECT due_at FROM clocks WHERE case_id = $1 AND kind = 'handling'", case_id) \
                == clock["due_at"]
            no = await tasks.wait_for(lambda m: m["type"] == "task.extension-decided" and not m["data"]["approved"])
            assert no["data"]["due_at"] == clock["due_at"].isoformat()
            await update(isolated, case_id, TaskExtensionRequested(case_no=case_no, owner=OWNER, until=want,
                                                                  reason="需采购配件"))
            await eventually(lambda: pool.fetchval("SELECT extension_state = 'pending' FROM cases WHERE case_id = $1",
                                                   case_id))
            approved = await operator.post(f"/api/v1/cases/{case_no}/extension", json={"approved": True, "note": "同意"})
            assert approved.status_code == 200
            yes = await tasks.wait_for(lambda m: m["type"] == "task.extension-decided" and m["data"]["approved"])
            assert yes["data"]["due_at"] == want.isoformat()
            moved = await pool.fetchrow("SELECT due_at, warn_at FROM clocks WHERE case_id = $1 AND kind = 'handling'", case_id)
            assert moved["due_at"] == want and moved["warn_at"] < want

            # 核查 fails: back for rework with the note; a failure without a note is refused.
            assert (await owner.post(url, json={"type": "task.resolved", "result": "已清理"})).status_code == 200
            assert (await operator.post(f"/api/v1/cases/{case_no}/check", json={"passed": False})).status_code == 422
            failed = await operator.post(f"/api/v1/cases/{case_no}/check", json={"passed": False, "note": "垃圾仍未清运"})
            assert failed.status_code == 200 and failed.json()["state"] == "rework"
        view = (await operator_view(service, case_no))
        assert view["state"] == "rework" and view["check_note"] == "垃圾仍未清运" and view["rework_count"] == 1
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)


async def operator_view(service, case_no: str) -> dict:
    async with http(service, "op") as operator:
        return (await operator.get(f"/api/v1/cases/{case_no}")).json()


async def test_an_unsatisfied_answer_within_the_window_reopens_a_closed_case_once(isolated):
    topics = Topics(isolated.topic_prefix)
    await ensure_topics(isolated.kafka_bootstrap, [topics.for_owner(OWNER)])
    service = await start(isolated)
    pool = service.runtime.pool
    try:
        await grant(isolated, service, token="op", name="值班员", role="operator")
        case_id, case_no = await open_case(isolated, pool)
        for event in (TaskAccepted(case_no=case_no, owner=OWNER), TaskResolved(case_no=case_no, owner=OWNER, result="已修复")):
            await update(isolated, case_id, event)
        await state_of(pool, case_id, "resolved")
        async with http(service, "op") as operator:
            assert (await operator.post(f"/api/v1/cases/{case_no}/check", json={"passed": True})).status_code == 200

        def answer(verdict: str, within: bool = True) -> Envelope:
            return CaseSurveyAnswered(case_no=case_no, survey_id=f"s-{uuid.uuid4().hex[:6]}", verdict=verdict,
                                      comment="问题依旧 13900001001", channel="sms", within_window=within) \
                .envelope(source="notify", case_id=case_id)

        async with TopicReader(isolated.kafka_bootstrap, topics.cases) as cases:
            late = answer("unsatisfied", within=False)
            happy = answer("basically_satisfied")
            unhappy = answer("unsatisfied")
            await send(isolated, late, happy, unhappy, unhappy)
            reopened = await cases.wait_for(lambda m: m["type"] == "case.reopened" and m["case_id"] == case_id)
            assert reopened["data"]["survey_id"] == unhappy.data["survey_id"] and reopened["data"]["owner"] == OWNER
            assert reopened["data"]["by"] == "resident" and "13900001001" not in str(reopened)
            again = await cases.all_within(1.5, lambda m: m["type"] == "case.reopened" and m["case_id"] == case_id)
        assert len(again) == 1
        case = await pool.fetchrow("SELECT state, reopened_count, last_verdict FROM cases WHERE case_id = $1", case_id)
        assert (case["state"], case["reopened_count"], case["last_verdict"]) == ("reopened", 1, "unsatisfied")
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)


async def test_a_held_report_has_a_dispatch_stage_limit_that_escalates_to_leadership(make_settings):
    settings = make_settings(deadline_poll_seconds=0.2)
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings.kafka_bootstrap, topics.fixed() + [topics.for_owner("zhzx")])
    service = await start(settings)
    try:
        await grant(settings, service, token="op", name="值班员", role="operator")
        case_id, case_no = f"held-{uuid.uuid4().hex[:6]}", "20261120-0007"
        # Reported ten days ago and still held: its hour to be accepted and dispatched is long gone.
        held = CaseReported(case_no=case_no, source="hotline", external_id=f"x-{case_id}", category="CM04",
                            description="垃圾堆放", observed_at=now(), unit_grid="3704020010010101") \
            .envelope(source="intake", case_id=case_id, occurred_at=now() - timedelta(days=10))
        async with TopicReader(settings.kafka_bootstrap, topics.cases, topics.tasks("zhzx")) as seen:
            await send(settings, held)
            overdue = await seen.wait_for(lambda m: m["type"] == "case.overdue" and m["case_id"] == case_id, 30)
            assert overdue["data"]["stage"] == "dispatch" and overdue["data"]["owner"] == "zhzx"
            escalated = await seen.wait_for(lambda m: m["type"] == "case.escalated" and m["case_id"] == case_id, 30)
            assert escalated["data"]["level"] == "leadership" and escalated["data"]["stage"] == "dispatch"
            urged = await seen.wait_for(lambda m: m["type"] == "task.urged" and m["case_id"] == case_id
                                        and m["data"]["level"] == "overdue", 30)
            assert urged["_topic"] == topics.tasks("zhzx") and "待分类" not in urged["data"]["text"]
        async with http(service, "op") as operator:
            listed = (await operator.get("/api/v1/cases", params={"community": "370402001001", "state": "reported"})).json()
            assert [c["case_no"] for c in listed["cases"]] == [case_no]
            assert (await operator.get("/api/v1/cases", params={"community": "370402001002", "state": "reported"})).json()["cases"] == []
            assert (await operator.get("/api/v1/cases", params={"community": "nowhere"})).status_code == 422
            assert (await operator.get("/api/v1/cases", params={"category": "CM04"})).json()["count"] == 1
            view = (await operator.get(f"/api/v1/cases/{case_no}")).json()
            assert [(s["kind"], s["escalation_level"]) for s in view["stages"]] == [("dispatch", "leadership")]
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)
        await drop_schemas(settings)


async def test_an_idempotency_key_repeats_an_update_only_on_its_own_case(isolated):
    topics = Topics(isolated.topic_prefix)
    await ensure_topics(isolated.kafka_bootstrap, [topics.for_owner(OWNER)])
    service = await start(isolated)
    try:
        await grant(isolated, service, token="own-hw", name="环卫所", role="owner", owner_code=OWNER)
        first_id, first_no = await open_case(isolated, service.runtime.pool)
        _second_id, second_no = await open_case(isolated, service.runtime.pool)
        async with http(service, "own-hw") as owner:
            key = {"Idempotency-Key": "sign-once"}
            one = await owner.post(f"/api/v1/tasks/{first_no}/updates", json={"type": "task.accepted"}, headers=key)
            again = await owner.post(f"/api/v1/tasks/{first_no}/updates", json={"type": "task.accepted"}, headers=key)
            other = await owner.post(f"/api/v1/tasks/{second_no}/updates", json={"type": "task.accepted"}, headers=key)
        assert one.json()["state"] == "in_progress" and again.json().get("duplicate") is True
        assert other.status_code == 200 and other.json()["state"] == "in_progress" and "duplicate" not in other.json()
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)


async def test_phone_numbers_in_owners_and_operators_words_are_masked_on_the_case_log(isolated):
    topics = Topics(isolated.topic_prefix)
    await ensure_topics(isolated.kafka_bootstrap, [topics.for_owner(OWNER)])
    service = await start(isolated)
    try:
        await grant(isolated, service, token="own-hw", name="环卫所", role="owner", owner_code=OWNER)
        await grant(isolated, service, token="op", name="值班员", role="operator")
        case_id, case_no = await open_case(isolated, service.runtime.pool)
        url = f"/api/v1/tasks/{case_no}/updates"
        async with http(service, "own-hw") as owner, http(service, "op") as operator, \
                TopicReader(isolated.kafka_bootstrap, topics.cases) as cases:
            assert (await owner.post(url, json={"type": "task.accepted"})).status_code == 200
            assert (await owner.post(url, json={"type": "task.resolved", "result": "已联系居民13900001001处理"})).status_code == 200
            failed = await operator.post(f"/api/v1/cases/{case_no}/check",
                                         json={"passed": False, "note": "请回电0632-3311234核实"})
            assert failed.status_code == 200
            reworked = await cases.wait_for(lambda m: m["type"] == "case.reworked" and m["case_id"] == case_id)
            resolved = await cases.wait_for(lambda m: m["type"] == "case.resolved" and m["case_id"] == case_id)
        assert "13900001001" not in resolved["data"]["result"] and "139****1001" in resolved["data"]["result"]
        assert "3311234" not in reworked["data"]["note"]
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)

"""The closed loop end to end, all four services on the real Kafka and PostgreSQL with a fake SMS gateway:
every path of DESIGN.md's state table, through the public topics and the fixed HTTP paths, and the
resident answered at every step that concerns them."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import AsyncIterator

import httpx
import pytest

from shared.contracts.tasks import TaskAccepted, TaskResolved, TaskReturned
from shared.topics import ensure_topics
from shared.worktime import WorkCalendar
from tests.e2e.conftest import TERMINAL_TOKEN
from tests.support import TopicReader, grant, publish

pytestmark = pytest.mark.e2e

POINT = {"lon": 117.575168, "lat": 34.871845}  # 市社家宿舍, unit grid 3704020010010201 (龙头社区)
OWNER, OTHER = "huanwei", "chengguan"
OPERATOR = "e2e-operator"


def report(phone: str, **fields) -> dict:
    body = {"source": "terminal", "external_id": f"SZT-{uuid.uuid4().hex[:8]}", "category": "CM04",
            "description": "垃圾箱损坏，垃圾外溢", "location": POINT, "address": None,
            "reporter": {"name": "李先生", "phone": phone}, "coordinator": None, "media": [],
            "observed_at": "2026-11-27T09:12:00+08:00"}
    body.update(fields)
    return body


def phone() -> str:
    return f"139{uuid.uuid4().int % 10**8:08d}"


class Loop:
    """HTTP clients on each service with the right credentials, and readers on the topics."""

    def __init__(self, street, cases: TopicReader, tasks: TopicReader, replies: TopicReader):
        self.street, self.cases, self.tasks, self.replies = street, cases, tasks, replies
        self.topics = street.intake.runtime.topics

    def client(self, service, token: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://wangge",
                                 headers=headers, timeout=15)

    async def post(self, service, token: str | None, path: str, body: dict | None = None) -> httpx.Response:
        async with self.client(service, token) as http:
            return await asyncio.wait_for(http.post(path, json=body), 15)

    async def report(self, body: dict) -> dict:
        response = await self.post(self.street.intake, TERMINAL_TOKEN, "/api/v1/reports", body)
        assert response.status_code == 201, response.text
        return response.json()

    async def state(self, case_no: str, state: str, timeout: float = 20) -> dict:
        """Wait until the operators' view of the case shows `state`; returns the view."""
        async with self.client(self.street.supervision, OPERATOR) as http:
            async def poll() -> dict:
                while True:
                    view = await http.get(f"/api/v1/cases/{case_no}")
                    if view.status_code == 200 and view.json()["state"] == state:
                        return view.json()
                    await asyncio.sleep(0.1)
            return await asyncio.wait_for(poll(), timeout)

    async def reply(self, case_id: str, kind: str, state: str = "sent") -> dict:
        return await self.replies.wait_for(
            lambda m: m["case_id"] == case_id and m["data"]["kind"] == kind and m["data"]["state"] == state, 30)

    async def task(self, case_id: str, owner: str, type_: str = "task.assigned", occasion: str | None = None) -> dict:
        return await self.tasks.wait_for(
            lambda m: m["case_id"] == case_id and m["type"] == type_ and m["data"]["owner"] == owner
            and (occasion is None or m["data"].get("occasion") == occasion), 30)

    async def owner_update(self, case_id: str, event) -> None:
        """An owner's system publishes on wangge.task-updates (what kcat would do)."""
        await publish(self.street.settings.kafka_bootstrap, self.topics.task_updates,
                      event.envelope(source=f"owner-{event.owner}", case_id=case_id), key=case_id)


@pytest.fixture
async def loop(street) -> AsyncIterator[Loop]:
    settings, services = street.settings, (street.intake, street.routing, street.supervision, street.notify)
    topics = street.intake.runtime.topics
    await ensure_topics(settings.kafka_bootstrap, [topics.for_owner(o) for o in (OWNER, OTHER, "zhzx")])
    await grant(settings, *services, token=OPERATOR, name="值班员", role="operator")
    for code in (OWNER, OTHER):
        await grant(settings, *services, token=f"e2e-owner-{code}", name=code, role="owner", owner_code=code)
    async with TopicReader(settings.kafka_bootstrap, topics.cases) as cases, \
            TopicReader(settings.kafka_bootstrap, *(topics.tasks(o) for o in (OWNER, OTHER, "zhzx"))) as tasks, \
            TopicReader(settings.kafka_bootstrap, topics.replies) as replies:
        yield Loop(street, cases, tasks, replies)


async def sms_to(street, number: str) -> list[dict]:
    async with httpx.AsyncClient(base_url=street.sms_sink_url, timeout=5) as sink:
        received = (await sink.get("/sms")).json()
    messages = received["messages"] if isinstance(received, dict) else received
    return [m for m in messages if m["to"] == number]


async def test_sign_resolve_check_close_survey_unsatisfied_reopen_and_dispatch_again(loop):
    street, resident = loop.street, phone()
    case = await loop.report(report(resident))
    case_id, case_no = case["case_id"], case["case_no"]
    assigned = await loop.task(case_id, OWNER)
    await loop.reply(case_id, "acknowledgement")
    await loop.state(case_no, "dispatched")

    # 签收 on Kafka (the contract's format), then progress and 处置完成 over HTTP with the owner's credential.
    await loop.owner_update(case_id, TaskAccepted(case_no=case_no, owner=OWNER))
    await loop.state(case_no, "in_progress")
    progress = await loop.reply(case_id, "progress")
    assert case_no in progress["data"]["text"] and progress["data"]["to"].startswith(resident[:3])
    url = f"/api/v1/tasks/{case_no}/updates"
    resolved = await loop.post(street.supervision, f"e2e-owner-{OWNER}", url,
                               {"type": "task.resolved", "result": "已更换新垃圾箱并清运垃圾", "media": []})
    assert resolved.status_code == 200, resolved.text
    await loop.state(case_no, "resolved")

    checked = await loop.post(street.supervision, OPERATOR, f"/api/v1/cases/{case_no}/check",
                              {"passed": True, "note": "现场核查已整改"})
    assert checked.status_code == 200 and checked.json()["state"] == "closed"
    resolution = await loop.reply(case_id, "resolution")
    assert "已更换新垃圾箱并清运垃圾" in resolution["data"]["text"]
    await loop.reply(case_id, "survey")

    # The resident: a wrong phone is told nothing; the right one answers 不满意 within the window.
    survey = f"/api/v1/surveys/{case_no}"
    wrong = await loop.post(street.notify, None, survey, {"phone": "13000000000", "verdict": "satisfied"})
    assert wrong.status_code == 404
    answered = await loop.post(street.notify, None, survey,
                               {"phone": resident, "verdict": "unsatisfied", "comment": "箱子又坏了"})
    assert answered.status_code in (200, 201), answered.text
    again = await loop.post(street.notify, None, survey, {"phone": resident, "verdict": "satisfied"})
    assert again.status_code == 409  # each answer counts once

    reopened = await loop.cases.wait_for(lambda m: m["type"] == "case.reopened" and m["case_id"] == case_id, 30)
    assert reopened["data"]["owner"] == OWNER
    redispatched = await loop.task(case_id, OWNER, occasion="reopen")
    # A fresh limit (CM04: 4 work hours) counted on the work calendar from the reopening, not the old deadline.
    again_at = datetime.fromisoformat(redispatched["occurred_at"])
    assert datetime.fromisoformat(redispatched["data"]["due_at"]) == WorkCalendar(zone=again_at.tzinfo).deadline(
        again_at, 4, "work_hours")
    assert again_at > datetime.fromisoformat(assigned["occurred_at"])
    view = await loop.state(case_no, "dispatched")
    assert view["reopened_count"] == 1 and view["last_verdict"] == "unsatisfied"
    assert resident not in str(view)

    mine = await loop.post(street.notify, None, "/api/v1/my-case", {"case_no": case_no, "phone": resident})
    assert mine.status_code == 200, mine.text
    kinds = [r["kind"] for r in mine.json()["replies"]]
    assert {"acknowledgement", "progress", "resolution", "survey"} <= set(kinds)

    # Every SMS went out once, each with the case number.
    texts = [m["text"] for m in await sms_to(street, resident)]
    assert len(texts) == len(set(texts)) and all(case_no in text for text in texts)
    history = [h["type"] for h in view["history"]]
    assert history.index("case.signed") < history.index("case.resolved") < history.index("case.closed") \
        < history.index("case.reopened") < len(history) - 1 - history[::-1].index("case.dispatched")


async def test_return_then_manual_dispatch_and_a_failed_check_goes_back_for_rework(loop):
    street = loop.street
    case = await loop.report(report(phone()))
    case_id, case_no = case["case_id"], case["case_no"]
    await loop.task(case_id, OWNER)
    await loop.state(case_no, "dispatched")

    await loop.owner_update(case_id, TaskReturned(case_no=case_no, owner=OWNER, reason="属城管执法范围，非环卫所职责"))
    await loop.state(case_no, "returned")
    dispatch = f"/api/v1/cases/{case_no}/dispatch"
    refused = await loop.post(street.routing, f"e2e-owner-{OWNER}", dispatch, {"owner": OTHER, "reason": "x"})
    assert refused.status_code == 403
    manual = await loop.post(street.routing, OPERATOR, dispatch, {"owner": OTHER, "reason": "回退后改派城管执法中队"})
    assert manual.status_code == 200, manual.text
    task = await loop.task(case_id, OTHER, occasion="manual")
    assert task["data"]["note"] == "回退后改派城管执法中队"
    await loop.state(case_no, "dispatched")

    url = f"/api/v1/tasks/{case_no}/updates"
    old_holder = await loop.post(street.supervision, f"e2e-owner-{OWNER}", url, {"type": "task.accepted"})
    assert old_holder.status_code == 404  # no longer its task
    for body in ({"type": "task.accepted"}, {"type": "task.resolved", "result": "已劝离占道摊贩"}):
        answered = await loop.post(street.supervision, f"e2e-owner-{OTHER}", url, body)
        assert answered.status_code == 200, answered.text
    failed = await loop.post(street.supervision, OPERATOR, f"/api/v1/cases/{case_no}/check",
                             {"passed": False, "note": "摊贩仍在原处经营"})
    assert failed.status_code == 200 and failed.json()["state"] == "rework"
    rework = await loop.task(case_id, OTHER, occasion="rework")
    assert rework["data"]["note"] == "摊贩仍在原处经营"
    view = await loop.state(case_no, "dispatched")
    assert view["owner"] == OTHER and view["rework_count"] == 1


async def test_explain_sends_the_explanation_and_the_check_closes_it(loop):
    street, resident = loop.street, phone()
    case = await loop.report(report(resident))
    case_id, case_no = case["case_id"], case["case_no"]
    await loop.state(case_no, "dispatched")
    url = f"/api/v1/tasks/{case_no}/updates"
    for body in ({"type": "task.accepted"},
                 {"type": "task.explained", "explanation": "该处垃圾箱属小区物业管理，已督促物业三日内更换"}):
        answered = await loop.post(street.supervision, f"e2e-owner-{OWNER}", url, body)
        assert answered.status_code == 200, answered.text
    explanation = await loop.reply(case_id, "explanation")
    assert "已督促物业三日内更换" in explanation["data"]["text"]
    checked = await loop.post(street.supervision, OPERATOR, f"/api/v1/cases/{case_no}/check", {"passed": True})
    assert checked.status_code == 200 and checked.json()["state"] == "closed"
    await loop.reply(case_id, "survey")
    closed = await loop.cases.wait_for(lambda m: m["type"] == "case.closed" and m["case_id"] == case_id)
    assert closed["data"]["outcome"] == "explained"


async def test_held_reports_are_classified_located_rejected_and_merged_and_the_reporters_hear_it(loop):
    street = loop.street
    held_phone, rejected_phone, duplicate_phone = phone(), phone(), phone()
    # No category and an address the registry does not know: held for the command center.
    held = await loop.report(report(held_phone, category=None, location=None, address="文化路东头第三个路灯旁"))
    assert held["state"] == "reported"
    operator = lambda path, body: loop.post(street.intake, OPERATOR, f"/api/v1/cases/{held['case_no']}/{path}", body)  # noqa: E731
    assert (await operator("classify", {"category": "CM04"})).json()["state"] == "reported"
    located = await operator("locate", {"location": POINT})
    assert located.status_code == 200 and located.json()["state"] == "accepted"
    await loop.task(held["case_id"], OWNER)
    await loop.reply(held["case_id"], "acknowledgement")

    junk = await loop.report(report(rejected_phone, category=None, location=None, address="不知道哪里"))
    rejected = await loop.post(street.intake, OPERATOR, f"/api/v1/cases/{junk['case_no']}/reject",
                               {"reason": "描述不清且无法联系，不予受理"})
    assert rejected.status_code == 200
    rejection = await loop.reply(junk["case_id"], "rejection")
    assert "描述不清且无法联系" in rejection["data"]["text"]

    duplicate = await loop.report(report(duplicate_phone, category=None, location=None, address="同上，垃圾箱坏了"))
    merged = await loop.post(street.intake, OPERATOR, f"/api/v1/cases/{duplicate['case_no']}/merge",
                             {"into": held["case_no"]})
    assert merged.status_code == 200, merged.text
    await loop.state(duplicate["case_no"], "merged")
    # The follower hears what the followed case's reporter hears from now on: here, the 签收.
    await loop.owner_update(held["case_id"], TaskAccepted(case_no=held["case_no"], owner=OWNER))

    async def texts_to(number: str) -> list[str]:
        while not any("签收" in m["text"] or "处置" in m["text"] for m in await sms_to(street, number)):
            await asyncio.sleep(0.2)
        return [m["text"] for m in await sms_to(street, number)]

    follower = await asyncio.wait_for(texts_to(duplicate_phone), 30)
    assert any(held["case_no"] in text for text in follower)


async def test_replies_wait_out_a_gateway_outage_and_are_delivered_once(loop):
    street = loop.street
    async with httpx.AsyncClient(base_url=street.sms_sink_url, timeout=5) as sink:
        assert (await sink.post("/control", json={"status": 503, "seconds": 8})).status_code == 200
    residents = [phone() for _ in range(3)]
    cases = [await loop.report(report(number)) for number in residents]
    for case in cases:
        sent = await loop.replies.wait_for(lambda m, c=case["case_id"]: m["case_id"] == c
                                           and m["data"]["kind"] == "acknowledgement", 60)
        assert sent["data"]["state"] == "sent"
    for number, case in zip(residents, cases):
        messages = await sms_to(street, number)
        assert len(messages) == 1 and case["case_no"] in messages[0]["text"]
    issued = await loop.replies.all_within(1.0, lambda m: m["case_id"] in {c["case_id"] for c in cases})
    assert len(issued) == 3

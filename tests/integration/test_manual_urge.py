"""督办 by hand (POST /api/v1/cases/{case_no}/urge) on the real Kafka and PostgreSQL: the holder gets task.urged
with the note on its task topic, the history and the figures count it, and every refusal is a clear 4xx."""
from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

import httpx
import pytest

from shared.clock import now
from shared.contracts.common import TimeLimit
from shared.topics import Topics, ensure_topics
from tests.supervision_cases import OTHER, OWNER, http, open_case
from tests.supervision_cases import start
from tests.support import TopicReader, grant

pytestmark = pytest.mark.integration

STREET_ZONE = ZoneInfo("Asia/Shanghai")  # the figures' days are street days


async def test_an_operator_urges_the_holder_and_the_history_and_figures_count_it(isolated):
    topics = Topics(isolated.topic_prefix)
    await ensure_topics(isolated.kafka_bootstrap, [topics.for_owner(OWNER), topics.for_owner(OTHER)])
    service = await start(isolated)
    pool = service.runtime.pool
    try:
        await grant(isolated, service, token="urge-op", name="值班员", role="operator")
        case_id, case_no = await open_case(isolated, pool)
        async with http(service, "urge-op") as operator, \
                TopicReader(isolated.kafka_bootstrap, topics.cases, topics.tasks(OWNER)) as seen:
            answer = await operator.post(f"/api/v1/cases/{case_no}/urge",
                                         json={"note": "群众反映强烈，请今日内处置，联系人13912345678"})
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"case_no": case_no, "state": "dispatched", "event": "case.urged"}

            told = await seen.wait_for(lambda m: m["type"] == "task.urged" and m.get("case_id") == case_id)
            assert told["_topic"] == topics.tasks(OWNER) and told["_key"] == case_id and told["source"] == "supervision"
            data = told["data"]
            assert data["owner"] == OWNER and data["case_no"] == case_no and data["level"] == "reminder"
            # The operator's words reach the owner, with the phone masked (personal data never in clear on a task topic).
            assert data["note"].startswith("群众反映强烈，请今日内处置") and "13912345678" not in data["note"]
            assert data["text"].startswith("【督办】") and data["note"] in data["text"]
            logged = await seen.wait_for(lambda m: m["type"] == "case.urged" and m.get("case_id") == case_id)
            assert logged["_topic"] == topics.cases and logged["data"]["by"] == "operator:值班员"
            assert logged["data"]["owner"] == OWNER and logged["data"]["overdue"] is False

            # The history shows it; the state did not move.
            view = (await operator.get(f"/api/v1/cases/{case_no}")).json()
            assert view["state"] == "dispatched"
            urged = [h for h in view["history"] if h["type"] == "case.urged"]
            assert len(urged) == 1 and urged[0]["effect"] == "noted" and urged[0]["data"]["note"] == data["note"]

            # A second urge is a second 督办: both counted for the owner in the figures.
            again = await operator.post(f"/api/v1/cases/{case_no}/urge", json={"note": "再次督办"})
            assert again.status_code == 200
            await seen.wait_for(lambda m: m["type"] == "task.urged" and m["data"].get("note") == "再次督办")
            today = now().astimezone(STREET_ZONE).date().isoformat()
            stats = await operator.get("/api/v1/stats", params={"from": today, "to": today, "by": "owner"})
            assert stats.status_code == 200, stats.text
            row = next(r for r in stats.json()["rows"] if r["key"] == OWNER)
            assert row["urged"] == 2
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)


async def test_an_overdue_case_is_urged_as_overdue(isolated):
    topics = Topics(isolated.topic_prefix)
    await ensure_topics(isolated.kafka_bootstrap, [topics.for_owner(OWNER)])
    service = await start(isolated)
    pool = service.runtime.pool
    try:
        await grant(isolated, service, token="urge-op2", name="值班员", role="operator")
        # Due 3.6 s after dispatch: the clock's own 督办 (no note) comes first, then the operator's.
        _, case_no = await open_case(isolated, pool, limit=TimeLimit(value=0.001, unit="hours"))
        async with http(service, "urge-op2") as operator, \
                TopicReader(isolated.kafka_bootstrap, topics.tasks(OWNER)) as seen:
            await seen.wait_for(lambda m: m["type"] == "task.urged" and m["data"]["level"] == "overdue"
                                and m["data"].get("note") is None, timeout=30)
            answer = await operator.post(f"/api/v1/cases/{case_no}/urge", json={"note": "已超期，立即处置"})
            assert answer.status_code == 200, answer.text
            told = await seen.wait_for(lambda m: m["type"] == "task.urged" and m["data"].get("note") == "已超期，立即处置")
            assert told["data"]["level"] == "overdue" and "超期" in told["data"]["text"]
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)


async def test_urges_are_refused_with_a_reason(isolated):
    topics = Topics(isolated.topic_prefix)
    await ensure_topics(isolated.kafka_bootstrap, [topics.for_owner(OWNER), topics.for_owner(OTHER)])
    service = await start(isolated)
    pool = service.runtime.pool
    try:
        await grant(isolated, service, token="urge-op3", name="值班员", role="operator")
        await grant(isolated, service, token="urge-hw", name="urge-hw", role="owner", owner_code=OWNER)
        await grant(isolated, service, token="urge-cg", name="urge-cg", role="owner", owner_code=OTHER)
        _, case_no = await open_case(isolated, pool)
        _, returned_no = await open_case(isolated, pool)
        _, closed_no = await open_case(isolated, pool)
        url = f"/api/v1/cases/{case_no}/urge"
        async with http(service, "urge-op3") as operator, http(service, "urge-hw") as owner, \
                http(service, "urge-cg") as other, http(service, "no-such-token") as forged, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://s") as anonymous:
            # Who: only the command center urges.
            assert (await anonymous.post(url, json={"note": "督办"})).status_code == 401
            assert (await forged.post(url, json={"note": "督办"})).status_code == 401
            assert (await owner.post(url, json={"note": "督办"})).status_code == 403  # even the holder itself
            assert (await other.post(url, json={"note": "督办"})).status_code == 403

            # Hostile or empty bodies: 422 naming what is wrong, never a 500.
            for body in ({}, {"note": ""}, {"note": "   \n"}, {"note": "长" * 501}, {"note": "a\u0000b"}, {"note": 5},
                         {"note": None}, {"note": "督办", "owner": OTHER}, ["督办"], "督办"):
                refused = await operator.post(url, json=body)
                assert refused.status_code == 422 and refused.json()["detail"], (body, refused.text)
            not_json = await operator.post(url, content=b"{note: ", headers={"Content-Type": "application/json"})
            assert not_json.status_code == 422
            assert (await operator.post("/api/v1/cases/..%2Fx/urge", json={"note": "督办"})).status_code in (404, 422)

            # Which case: unknown, with no holder, answered and awaiting the check, finished.
            unknown = await operator.post("/api/v1/cases/19990101-0001/urge", json={"note": "督办"})
            assert unknown.status_code == 404 and "19990101-0001" in unknown.json()["detail"]
            back = await owner.post(f"/api/v1/tasks/{returned_no}/updates",
                                    json={"type": "task.returned", "reason": "非本单位职责"})
            assert back.json()["state"] == "returned"
            no_holder = await operator.post(f"/api/v1/cases/{returned_no}/urge", json={"note": "督办"})
            assert no_holder.status_code == 409 and "no owner holds it" in no_holder.json()["detail"]
            for update in ({"type": "task.accepted"}, {"type": "task.resolved", "result": "已处理", "media": []}):
                assert (await owner.post(f"/api/v1/tasks/{closed_no}/updates", json=update)).status_code == 200
            answered = await operator.post(f"/api/v1/cases/{closed_no}/urge", json={"note": "督办"})
            assert answered.status_code == 409 and "核查" in answered.json()["detail"]
            assert (await operator.post(f"/api/v1/cases/{closed_no}/check", json={"passed": True})).status_code == 200
            final = await operator.post(f"/api/v1/cases/{closed_no}/urge", json={"note": "督办"})
            assert final.status_code == 409 and "finished case" in final.json()["detail"]

        # Nothing refused left a trace: no urge in any history, nothing queued for an owner.
        assert await pool.fetchval("SELECT count(*) FROM case_events WHERE type = 'case.urged'") == 0
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)

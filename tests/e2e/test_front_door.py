"""The front door: one origin whose /api/v1 paths each reach the service that owns them (DESIGN.md, "HTTP
surfaces"), the screens served with their security headers, and a service that is not there answered
in the house format, not with nginx's HTML page."""
from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from shared.topics import ensure_topics
from tests.e2e.conftest import TERMINAL_TOKEN
from tests.e2e.test_one_case import report
from tests.support import TopicReader, grant

pytestmark = pytest.mark.e2e

OPERATOR = "e2e-front-operator"


async def test_every_fixed_path_reaches_its_owner_through_the_front_door(street, front_door):
    services = (street.intake, street.routing, street.supervision, street.notify)
    await grant(street.settings, *services, token=OPERATOR, name="值班员", role="operator")
    topics = street.intake.runtime.topics
    await ensure_topics(street.settings.kafka_bootstrap, [topics.for_owner("huanwei"), topics.for_owner("chengguan")])
    async with httpx.AsyncClient(base_url=front_door.url, timeout=15) as http, \
            TopicReader(street.settings.kafka_bootstrap, topics.tasks("chengguan")) as chengguan:
        terminal = {"Authorization": f"Bearer {TERMINAL_TOKEN}"}
        operator = {"Authorization": f"Bearer {OPERATOR}"}

        # intake: the report
        created = await http.post("/api/v1/reports", headers=terminal, json=report(f"FD-{uuid.uuid4().hex[:8]}"))
        assert created.status_code == 201, created.text
        case_no = created.json()["case_no"]

        # supervision: the case, once routing has dispatched it
        async def dispatched() -> dict:
            while True:
                answer = await http.get(f"/api/v1/cases/{case_no}", headers=operator)
                if answer.status_code == 200 and answer.json().get("state") == "dispatched":
                    return answer.json()
                await asyncio.sleep(0.2)

        case = await asyncio.wait_for(dispatched(), 30)
        assert case["owner"] == "huanwei"

        # routing: manual re-dispatch, which puts the task on the new owner's topic
        moved = await http.post(f"/api/v1/cases/{case_no}/dispatch", headers=operator,
                                json={"owner": "chengguan", "reason": "占道问题，转城管"})
        assert moved.status_code in (200, 202), moved.text
        task = await chengguan.wait_for(lambda m: m["type"] == "task.assigned" and m["data"]["case_no"] == case_no, 30)
        assert task["data"]["owner"] == "chengguan"

        # routing's reference reads, intake's Open311, notify's resident endpoint
        categories = await http.get("/api/v1/categories", headers=operator)
        assert categories.status_code == 200 and "CM04" in categories.text
        services_list = await http.get("/open311/v2/services.json")
        assert services_list.status_code == 200 and any(s["service_code"] == "CM04" for s in services_list.json())
        mine = await http.post("/api/v1/my-case", json={"case_no": case_no, "phone": "13900001001"})
        assert mine.status_code == 200, mine.text
        assert mine.json()["case_no"] == case_no

        # intake's held-report decisions: a case that is not held is refused by intake, with its reason
        classify = await http.post(f"/api/v1/cases/{case_no}/classify", headers=operator, json={"category": "CM01"})
        assert classify.status_code == 409, classify.text

        # no credential: 401 from the service, passed through unchanged
        assert (await http.get("/api/v1/cases")).status_code == 401

        # notify's SMS callback is the gateway's, routed only from WANGGE_SMS_GATEWAY_ADDRESSES: none is set here
        # (as under ./dev up, whose local sink calls notify directly), so the door routes it from nowhere
        sms = await http.post("/api/v1/sms/inbound", json={"from": "13900001001", "text": "1"})
        assert sms.status_code == 403 and sms.json()["detail"].startswith("非短信网关地址"), sms.text


async def test_the_screens_are_served_with_their_security_headers(front_door):
    async with httpx.AsyncClient(base_url=front_door.url, timeout=10) as http:
        for path, page in (("/", "workbench"), ("/screen", "screen")):
            answer = await http.get(path)
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
            assert f"/assets/{page}.js" in answer.text
            assert "default-src 'self'" in answer.headers["content-security-policy"]
            assert answer.headers["x-frame-options"] == "DENY"
            bundle = await http.get(f"/assets/{page}.js")
            assert bundle.status_code == 200 and "javascript" in bundle.headers["content-type"]
        assert (await http.get("/assets/no-such-file.js")).status_code == 404


async def test_a_service_that_is_not_there_is_answered_in_the_house_format(front_door):
    # No live-figures process runs behind this front door.
    async with httpx.AsyncClient(base_url=front_door.url, timeout=10) as http:
        answer = await http.get("/api/v1/live/figures")
    assert answer.status_code == 503
    assert "不可用" in answer.json()["detail"]

"""One case end to end on the real broker and database: report → case → task on the owner's topic,
clock opened, acknowledgement SMS at the gateway and the reply on wangge.replies."""
from __future__ import annotations

import uuid
from datetime import datetime

import httpx
import pytest

from shared.contracts import Envelope
from shared.topics import ensure_topics
from tests.e2e.conftest import TERMINAL_TOKEN
from tests.support import TopicReader, eventually, grant, publish

pytestmark = pytest.mark.e2e

TASK_FIELDS = {"case_no", "owner", "category", "description", "unit_grid", "due_at", "priority"}
# A building of 市社家宿舍 in unit grid 3704020010010201, community 370402001001 (龙头社区).
POINT = {"lon": 117.575168, "lat": 34.871845}
COMMUNITY = "370402001001"


def report(external_id: str, **fields) -> dict:
    body = {"source": "terminal", "external_id": external_id, "category": "CM04",
            "description": "3号楼前垃圾箱损坏，垃圾外溢", "location": POINT, "address": None,
            "reporter": {"name": "李先生", "phone": "13900001001"}, "coordinator": None,
            "media": ["https://img.example.org/szt/0001.jpg"], "observed_at": "2026-11-27T09:12:00+08:00"}
    body.update(fields)
    return body


async def test_a_terminal_report_over_http_reaches_its_owner_the_clock_and_the_resident(street):
    settings, topics = street.settings, street.intake.runtime.topics
    await ensure_topics(settings.kafka_bootstrap, [topics.for_owner("huanwei")])
    async with TopicReader(settings.kafka_bootstrap, topics.tasks("huanwei")) as tasks, \
            TopicReader(settings.kafka_bootstrap, topics.replies) as replies:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=street.intake.app), base_url="http://intake",
                                     headers={"Authorization": f"Bearer {TERMINAL_TOKEN}"}, timeout=10) as http:
            response = await http.post("/api/v1/reports", json=report(f"SZT-0001-{uuid.uuid4().hex[:6]}"))
        assert response.status_code == 201, response.text
        case_id, case_no = response.json()["case_id"], response.json()["case_no"]

        task = await tasks.wait_for(lambda m: m["case_id"] == case_id and m["type"] == "task.assigned")
        assert task["_key"] == case_id and task["source"] == "routing"
        assert TASK_FIELDS <= set(task["data"])
        assert task["data"]["owner"] == "huanwei" and task["data"]["case_no"] == case_no
        assert task["data"]["category"] == "CM04" and task["data"]["unit_grid"] == "3704020010010201"
        assert task["data"]["location"] == POINT and task["data"]["priority"] == "normal"
        due_at = datetime.fromisoformat(task["data"]["due_at"])
        assert due_at.utcoffset() is not None and due_at > datetime.fromisoformat(task["occurred_at"])

        reply = await replies.wait_for(lambda m: m["case_id"] == case_id)
        assert reply["type"] == "reply.issued"
        assert reply["data"]["kind"] == "acknowledgement" and reply["data"]["channel"] == "sms"
        assert reply["data"]["state"] == "sent" and reply["data"]["to"] == "139****1001"
        assert case_no in reply["data"]["text"]

    async with httpx.AsyncClient(base_url=street.sms_sink_url, timeout=5) as sink:
        received = (await sink.get("/sms")).json()
    messages = received["messages"] if isinstance(received, dict) else received
    sms = [m for m in messages if case_no in m["text"]]
    assert len(sms) == 1 and sms[0]["to"] == "13900001001" and "受理" in sms[0]["text"]

    # The case's state in PostgreSQL, as each service holds it.
    intake_state = await street.intake.runtime.pool.fetchval(
        "SELECT state FROM reports WHERE case_id = $1", uuid.UUID(case_id))
    assert intake_state == "accepted"
    # Supervision learns of the dispatch from wangge.cases, in its own time: nothing orders that before notify's reply.
    async def dispatched_in_supervision():
        row = await street.supervision.runtime.pool.fetchrow(
            "SELECT state, owner FROM cases WHERE case_id::text = $1", case_id)
        return row if row is not None and row["state"] != "accepted" else None

    import time as _t; _t0 = _t.monotonic()
    supervised = await eventually(dispatched_in_supervision, 30, "the dispatch in supervision's read model")
    print("WAITED", _t.monotonic() - _t0)
    assert supervised["state"] == "dispatched" and supervised["owner"] == "huanwei"
    clock_due = await street.supervision.runtime.pool.fetchval(
        "SELECT due_at FROM clocks WHERE case_id::text = $1 AND kind = 'handling'", case_id)
    assert clock_due == due_at

    # The operators' view of the case shows its state and clock, and no resident phone in clear.
    await grant(settings, street.supervision, token="e2e-operator", name="值班员", role="operator")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=street.supervision.app),
                                 base_url="http://supervision", timeout=10,
                                 headers={"Authorization": "Bearer e2e-operator"}) as http:
        view = await http.get(f"/api/v1/cases/{case_no}")
    assert view.status_code == 200 and view.json()["state"] == "dispatched"
    assert view.json()["clock"]["due_at"] == task["data"]["due_at"]
    assert "13900001001" not in view.text


async def test_a_report_published_on_kafka_goes_to_the_community_and_bad_ones_are_rejected(street):
    settings, topics = street.settings, street.intake.runtime.topics
    bootstrap = settings.kafka_bootstrap
    await ensure_topics(bootstrap, [topics.for_owner(COMMUNITY)])
    external_id = f"12345-{uuid.uuid4().hex[:6]}"
    dispute = report(external_id, source="hotline", category="MD01", description="楼上漏水，邻里纠纷",
                     reporter={"name": "王女士", "phone": "13800005678"})
    message = Envelope.new("report.submitted", 1, dispute, source="hotline-bridge")
    async with TopicReader(bootstrap, topics.tasks(COMMUNITY)) as tasks, \
            TopicReader(bootstrap, topics.reports_rejected) as rejected, \
            TopicReader(bootstrap, topics.cases) as cases:
        await publish(bootstrap, topics.reports, b"this is not json", key="bad-1")
        await publish(bootstrap, topics.reports, Envelope.new(
            "report.submitted", 1, report("far-1", location={"lon": 121.47, "lat": 31.23}), source="t"), key="far-1")
        await publish(bootstrap, topics.reports, message, key=external_id)
        # The bridge sends the same report again (a retry with a new envelope id): still one case.
        await publish(bootstrap, topics.reports, Envelope.new("report.submitted", 1, dispute, source="hotline-bridge"),
                      key=external_id)

        task = await tasks.wait_for(lambda m: m["type"] == "task.assigned")
        assert task["data"]["owner"] == COMMUNITY and task["data"]["category"] == "MD01"
        assert TASK_FIELDS <= set(task["data"])

        not_json = await rejected.wait_for(lambda m: m["_key"] == "bad-1")
        assert "not JSON" in not_json["data"]["reason"]
        far = await rejected.wait_for(lambda m: m["_key"] == "far-1")
        assert "outside the street" in far["data"]["reason"]

        reported = await cases.all_within(
            2.0, lambda m: m.get("type") == "case.reported" and m["data"]["external_id"] == external_id)
        assert len(reported) == 1
        assigned = [m for _t, _k, m in tasks.seen if m["type"] == "task.assigned" and m["case_id"] == task["case_id"]]
        assert len(assigned) == 1
    count = await street.intake.runtime.pool.fetchval("SELECT count(*) FROM reports WHERE external_id = $1", external_id)
    assert count == 1

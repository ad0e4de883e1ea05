"""Intake on the real broker and database: HTTP and Kafka reports become cases, once; bad input is rejected."""
from __future__ import annotations

import uuid

import httpx
import pytest

from services.intake.bootstrap import build
from shared.contracts import Envelope
from tests.support import TopicReader, grant, publish, running

pytestmark = pytest.mark.integration

TERMINAL_TOKEN = "test-terminal"


def report_body(external_id: str, **fields) -> dict:
    body = {"source": "terminal", "external_id": external_id, "category": "CM04", "description": "垃圾箱破损，垃圾外溢",
            "location": {"lon": 117.575168, "lat": 34.871845}, "address": None,
            "reporter": {"name": "李先生", "phone": "13900001001"}, "coordinator": None, "media": [],
            "observed_at": "2026-11-27T09:00:00+08:00"}
    body.update(fields)
    return body


@pytest.fixture
async def intake(isolated):
    async with running(build(isolated, manage_runtime=False)) as service:
        await grant(isolated, service, token=TERMINAL_TOKEN, name="网格员001终端", role="terminal",
                    worker_id="W001", device_id="SZT-0001")
        await grant(isolated, service, token="test-operator", name="值班员", role="operator")
        yield service


def client(service) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://intake",
                             headers={"Authorization": f"Bearer {TERMINAL_TOKEN}"}, timeout=10)


async def test_a_terminal_report_over_http_becomes_a_numbered_accepted_case(intake, isolated):
    topics = intake.runtime.topics
    async with client(intake) as http, TopicReader(isolated.kafka_bootstrap, topics.cases) as cases:
        response = await http.post("/api/v1/reports", json=report_body("SZT-0001-1"))
        assert response.status_code == 201, response.text
        receipt = response.json()
        assert receipt["state"] == "accepted" and receipt["unit_grid"] == "3704020010010201"
        assert receipt["case_no"].endswith("-0001") and not receipt["duplicate"]
        reported = await cases.wait_for(lambda m: m["type"] == "case.reported" and m["case_id"] == receipt["case_id"])
        accepted = await cases.wait_for(lambda m: m["type"] == "case.accepted" and m["case_id"] == receipt["case_id"])
        assert reported["_key"] == receipt["case_id"]
        # The credential, not the body, says which coordinator and device reported.
        assert reported["data"]["coordinator"] == {"worker_id": "W001", "device_id": "SZT-0001"}
        assert accepted["data"]["unit_grid"] == "3704020010010201" and accepted["data"]["category"] == "CM04"
        assert accepted["occurred_at"].endswith("+08:00")

        again = await http.post("/api/v1/reports", json=report_body("SZT-0001-1"))
        assert again.status_code == 200 and again.json()["case_id"] == receipt["case_id"] and again.json()["duplicate"]
        row = await intake.runtime.pool.fetchrow("SELECT state, case_no FROM reports WHERE case_id = $1",
                                                 uuid.UUID(receipt["case_id"]))
        assert row["state"] == "accepted" and row["case_no"] == receipt["case_no"]
        assert await intake.runtime.pool.fetchval("SELECT count(*) FROM reports") == 1


async def test_http_refuses_missing_credentials_wrong_roles_and_bad_reports_with_reasons(intake):
    async with client(intake) as http:
        anonymous = await http.post("/api/v1/reports", json=report_body("x"), headers={"Authorization": ""})
        assert anonymous.status_code == 401 and "Bearer" in anonymous.json()["detail"]
        posing = await http.post("/api/v1/reports", json=report_body("x", source="hotline"))
        assert posing.status_code == 403
        outside = await http.post("/api/v1/reports", json=report_body("x", location={"lon": 116.4, "lat": 39.9}))
        assert outside.status_code == 422 and "outside the street" in outside.json()["detail"]
        empty = await http.post("/api/v1/reports", json=report_body("x", description=""))
        assert empty.status_code == 422 and "description" in empty.json()["detail"]
        nowhere = await http.post("/api/v1/reports", json=report_body("x", location=None, address=None))
        assert nowhere.status_code == 422 and "location or address" in empty.json()["detail"] + nowhere.json()["detail"]
        not_json = await http.post("/api/v1/reports", content=b"{oops", headers={"Content-Type": "application/json"})
        assert not_json.status_code == 422
    assert await intake.runtime.pool.fetchval("SELECT count(*) FROM reports") == 0


async def test_reports_from_kafka_become_cases_once_and_bad_ones_are_rejected_with_reasons(intake, isolated):
    topics = intake.runtime.topics
    bootstrap = isolated.kafka_bootstrap
    hotline = report_body("12345-778", source="hotline", category=None, location=None,
                          address="文化路街道市社家宿舍3号楼", reporter={"name": "王女士", "phone": "13800005678"})
    message = Envelope.new("report.submitted", 1, hotline, source="hotline-bridge")
    outside = Envelope.new("report.submitted", 1, report_body("T-9", location={"lon": 1.0, "lat": 1.0}), source="t")
    missing = Envelope.new("report.submitted", 1, {k: v for k, v in report_body("T-10").items() if k != "description"},
                           source="t")
    async with TopicReader(bootstrap, topics.cases) as cases, \
            TopicReader(bootstrap, topics.reports_rejected) as rejected:
        await publish(bootstrap, topics.reports, b"\xff not json", key="raw-1")
        await publish(bootstrap, topics.reports, outside, key="T-9")
        await publish(bootstrap, topics.reports, missing, key="T-10")
        await publish(bootstrap, topics.reports, message, key="12345-778")
        await publish(bootstrap, topics.reports, message, key="12345-778")  # redelivered
        second = Envelope.new("report.submitted", 1, hotline, source="hotline-bridge")  # resent with a new id
        await publish(bootstrap, topics.reports, second, key="12345-778")

        reported = await cases.wait_for(lambda m: m["type"] == "case.reported" and m["data"]["external_id"] == "12345-778")
        # No category from the caller: reported, waiting for the command center to classify, located by address.
        assert reported["data"]["unit_grid"] == "3704020010010201"
        not_json = await rejected.wait_for(lambda m: m["_key"] == "raw-1")
        assert "not JSON" in not_json["data"]["reason"]
        far = await rejected.wait_for(lambda m: m["_key"] == "T-9")
        assert "outside the street" in far["data"]["reason"] and far["data"]["original"]["id"] == outside.id
        incomplete = await rejected.wait_for(lambda m: m["_key"] == "T-10")
        assert "description" in incomplete["data"]["reason"]

        same = await cases.all_within(2.0, lambda m: m.get("data", {}).get("external_id") == "12345-778")
        assert len(same) == 1
        assert not [m for m in cases.seen if m[2].get("type") == "case.accepted"]
    row = await intake.runtime.pool.fetchrow("SELECT state, hold_reason FROM reports WHERE external_id = '12345-778'")
    assert row["state"] == "reported" and "classif" in row["hold_reason"]
    assert await intake.runtime.pool.fetchval("SELECT count(*) FROM reports") == 1

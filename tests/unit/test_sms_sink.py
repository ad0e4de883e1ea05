"""The fake SMS gateway, in-process: accepts, de-duplicates on ref, fails on request."""
from __future__ import annotations

import httpx
import orjson
import pytest

from deploy.local.sms_sink import create_sink_app

pytestmark = pytest.mark.unit

SMS = {"to": "13900001001", "text": "【文化路街道】您反映的问题已受理，案件编号20261127-0001。", "ref": "d-1"}


def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sink")


async def test_accepts_and_lists_newest_last(tmp_path):
    log = tmp_path / "sms.jsonl"
    async with _client(create_sink_app(log)) as client:
        first = await client.post("/sms", json=SMS)
        assert first.status_code == 200 and first.json()["status"] == "accepted" and first.json()["ref"] == "d-1"
        await client.post("/sms", json={**SMS, "ref": "d-2", "text": "second"})
        listed = (await client.get("/sms")).json()
    assert listed["count"] == 2 and [m["ref"] for m in listed["messages"]] == ["d-1", "d-2"]
    assert listed["messages"][0]["to"] == "13900001001" and listed["messages"][0]["text"] == SMS["text"]
    assert [orjson.loads(line)["ref"] for line in log.read_bytes().splitlines()] == ["d-1", "d-2"]


async def test_a_repeated_ref_is_answered_but_recorded_once():
    app = create_sink_app()
    async with _client(app) as client:
        answers = [await client.post("/sms", json=SMS) for _ in range(3)]
        listed = (await client.get("/sms")).json()
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.json()["duplicate"] for a in answers] == [False, True, True]
    assert listed["count"] == 1 and listed["messages"][0]["repeats"] == 2


async def test_fail_next_fails_that_many_requests_then_accepts():
    async with _client(create_sink_app()) as client:
        armed = await client.post("/sms/fail-next", params={"status": 503, "count": 2})
        assert armed.json() == {"status": "armed", "fail_status": 503, "remaining": 2}
        codes = [(await client.post("/sms", json=SMS)).status_code for _ in range(3)]
        listed = (await client.get("/sms")).json()
    assert codes == [503, 503, 200]
    assert listed["count"] == 1 and listed["messages"][0]["repeats"] == 0


async def test_bad_requests_are_refused_with_a_reason():
    async with _client(create_sink_app()) as client:
        landline = await client.post("/sms", json={**SMS, "to": "010-62345678"})
        missing = await client.post("/sms", json={"to": "13900001001"})
        cleared = await client.delete("/sms")
        listed = (await client.get("/sms")).json()
    assert landline.status_code == 400 and "mobile" in landline.json()["reason"]
    assert missing.status_code == 422
    assert cleared.status_code == 200 and listed["count"] == 0

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


async def test_the_idempotency_key_header_de_duplicates_like_ref():
    async with _client(create_sink_app()) as client:
        first = await client.post("/sms", json=SMS, headers={"Idempotency-Key": "k-1"})
        again = await client.post("/sms", json={**SMS, "ref": "other"}, headers={"Idempotency-Key": "k-1"})
        listed = (await client.get("/sms")).json()
    assert [first.json()["duplicate"], again.json()["duplicate"]] == [False, True]
    assert listed["count"] == 1 and listed["messages"][0]["ref"] == "k-1"


async def test_control_takes_the_sink_down_for_a_while_and_heals_it(monkeypatch):
    import deploy.local.sms_sink as sink

    clock = [1000.0]
    monkeypatch.setattr(sink.time, "monotonic", lambda: clock[0])
    app = create_sink_app()
    async with _client(app) as client:
        down = await client.post("/control", json={"status": 503, "seconds": 60})
        assert down.json() == {"status": "down", "answers": 503, "seconds": 60, "delay_ms": 0}
        assert (await client.post("/sms", json=SMS)).status_code == 503
        clock[0] += 59
        assert (await client.post("/sms", json=SMS)).status_code == 503
        clock[0] += 2  # the minute is over
        assert (await client.post("/sms", json=SMS)).status_code == 200
        await client.post("/control", json={"status": 502})  # down until healed
        clock[0] += 10_000
        assert (await client.post("/sms", json={**SMS, "ref": "d-2"})).status_code == 502
        assert (await client.post("/control", json={"status": 200})).json() == {"status": "up", "delay_ms": 0}
        assert (await client.post("/sms", json={**SMS, "ref": "d-2"})).status_code == 200
        listed = (await client.get("/sms")).json()
        assert (await client.post("/control", json={"status": 99})).status_code == 422
    assert listed["count"] == 2 and app.state.sink.rejected_posts == 3


async def test_a_resident_reply_is_forwarded_to_the_callback_with_the_token():
    received: list[tuple[dict, str | None]] = []

    async def callback(scope, receive, send):  # a minimal ASGI app standing in for notify
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        token = dict(scope["headers"]).get(b"x-gateway-token")
        received.append((orjson.loads(body), token.decode() if token else None))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"matched": true}'})

    app = create_sink_app(callback_url="http://notify/api/v1/sms/inbound", callback_token="t0k",
                          callback_transport=httpx.ASGITransport(app=callback))
    async with _client(app) as client:
        answer = await client.post("/sms/reply", json={"from": "13900001001", "text": "3"})
    assert answer.status_code == 200 and answer.json()["answer"] == {"matched": True}
    assert received == [({"from": "13900001001", "text": "3"}, "t0k")]
    async with _client(create_sink_app()) as client:
        assert (await client.post("/sms/reply", json={"from": "1", "text": "3"})).status_code == 409


async def test_a_set_delay_holds_each_answer_that_long_and_can_be_changed():
    import time

    async with _client(create_sink_app(delay_ms=30)) as client:
        started = time.monotonic()
        first = await client.post("/sms", json=SMS)
        slow = time.monotonic() - started
        changed = await client.post("/control", json={"status": 200, "delay_ms": 0})
        started = time.monotonic()
        await client.post("/sms", json={**SMS, "ref": "d-2"})
        quick = time.monotonic() - started
        too_long = await client.post("/control", json={"status": 200, "delay_ms": 120000})
    assert first.status_code == 200 and slow >= 0.03
    assert changed.json() == {"status": "up", "delay_ms": 0}
    assert quick < 0.03
    assert too_long.status_code == 422

"""notify on the real broker and database, sending to a real (local, fake) SMS gateway over HTTP."""
from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.notify_running import PHONE, Notify, case_events, notify  # noqa: F401 — the fixture
from tests.support import TopicReader

pytestmark = pytest.mark.integration


async def test_an_accepted_case_is_acknowledged_by_one_sms_and_one_reply(notify: Notify):
    case_id, case_no, reported, accepted = case_events(PHONE)
    async with TopicReader(notify.settings.kafka_bootstrap, notify.service.runtime.topics.replies) as replies:
        await notify.cases(reported, accepted)
        reply = await replies.wait_for(lambda m: m.get("data", {}).get("case_no") == case_no, timeout=20)
        assert reply["type"] == "reply.issued" and reply["_key"] == case_id and reply["source"] == "notify"
        data = reply["data"]
        assert (data["kind"], data["channel"], data["state"], data["to"]) == ("acknowledgement", "sms", "sent", "139****1001")
        assert case_no in data["text"] and PHONE not in str(reply)

        [sms] = notify.sms_to(PHONE)
        assert case_no in sms["text"] and sms["text"].startswith(f"【{notify.settings.sms_signature}】")
        assert sms["ref"] == data["delivery_id"]

        # The same event delivered again (a consumer replay): still one SMS, one reply.
        await notify.cases(accepted)
        later = await replies.all_within(2.5, lambda m: m.get("data", {}).get("case_no") == case_no)
        assert len(later) == 1
        assert len(notify.sms_to(PHONE)) == 1 and notify.sink.messages[0]["repeats"] == 0

    async with notify.http() as anonymous:
        refused = await asyncio.wait_for(anonymous.get("/api/v1/deliveries"), 10)
    assert refused.status_code == 401
    async with await notify.operator() as client:
        view = await asyncio.wait_for(client.get("/api/v1/deliveries", params={"case_no": case_no}), 10)
    assert view.status_code == 200
    [delivery] = view.json()["deliveries"]
    assert (delivery["to"], delivery["state"], delivery["attempts"]) == ("139****1001", "sent", 1)
    assert PHONE not in view.text and delivery["sent_at"].endswith("+08:00")


async def test_a_gateway_outage_is_retried_and_a_refusal_is_final(notify: Notify):
    async with httpx.AsyncClient() as client:
        await asyncio.wait_for(client.post(f"{notify.gateway}/sms/fail-next", params={"status": 503, "count": 1}), 5)
    case_id, case_no, reported, accepted = case_events(PHONE)
    async with TopicReader(notify.settings.kafka_bootstrap, notify.service.runtime.topics.replies) as replies:
        await notify.cases(reported, accepted)
        reply = await replies.wait_for(lambda m: m.get("data", {}).get("case_no") == case_no, timeout=20)
        assert reply["data"]["state"] == "sent"
        assert len(notify.sms_to(PHONE)) == 1
        attempts = await notify.service.runtime.pool.fetchval(
            "SELECT attempts FROM deliveries WHERE case_no = $1", case_no)
        assert attempts == 2

        async with httpx.AsyncClient() as client:
            await asyncio.wait_for(client.post(f"{notify.gateway}/sms/fail-next", params={"status": 400, "count": 1}), 5)
        _, refused_no, reported, accepted = case_events("13900002002")
        await notify.cases(reported, accepted)
        refused = await replies.wait_for(lambda m: m.get("data", {}).get("case_no") == refused_no, timeout=20)
        assert refused["data"]["state"] == "failed" and "400" in refused["data"]["detail"]
        assert refused["data"]["to"] == "139****2002" and notify.sms_to("13900002002") == []


async def test_no_phone_means_no_sms_and_a_landline_is_held_for_a_call_back(notify: Notify):
    _, silent_no, reported, accepted = case_events(None)
    _, landline_no, reported2, accepted2 = case_events("010-62345678")
    async with TopicReader(notify.settings.kafka_bootstrap, notify.service.runtime.topics.replies) as replies:
        await notify.cases(reported, accepted, reported2, accepted2)
        held = await replies.wait_for(lambda m: m.get("data", {}).get("case_no") == landline_no, timeout=20)
        assert (held["data"]["state"], held["data"]["to"]) == ("held", "010-****5678")
        assert "mobile" in held["data"]["detail"]
        none = await replies.all_within(2.0, lambda m: m.get("data", {}).get("case_no") == silent_no)
    assert none == [] and notify.sink.messages == []
    assert await notify.service.runtime.pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE case_no = $1", silent_no) == 0

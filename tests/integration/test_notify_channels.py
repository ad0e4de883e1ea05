"""Replies on the resident's channel, against real local servers: the SMS gateway (deploy/local/sms_sink.py), an
SMTP server (deploy/local/mail_sink.py, aiosmtpd) and an integrator's HTTPS-less loopback webhook receiver.
Each server down, then up: the reply is delivered once."""
from __future__ import annotations

import asyncio
import socket
from contextlib import asynccontextmanager
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import AsyncIterator

import orjson as _orjson
import pytest
import time as _time
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse

from deploy.local.mail_sink import MailSink
from deploy.local.sms_sink import SinkState
from shared.contracts import Envelope
from shared.contracts.cases import CaseAccepted, CaseReported, CaseSigned
from shared.contracts.common import Reporter
from shared.contracts.contacts import ContactRecorded
from shared.runtime import Service
from shared.settings import Settings
from services.notify.bootstrap import build
from services.notify.domain.delivery import RetryPolicy
from services.notify.domain.webhooks import verify
from tests.notify_running import sms_sink
from tests.support import free_port, publish, running

pytestmark = pytest.mark.integration

FAST = RetryPolicy(base_seconds=0.2, cap_seconds=0.5, jitter=0.5, lease_seconds=30)
EMAIL = "zhang.san@example.cn"
PHONE = "13900007001"



@dataclass
class Street:
    service: Service
    settings: Settings
    sms: SinkState
    mail: MailSink

    async def send(self, topic: str, *envelopes: Envelope) -> None:
        for envelope in envelopes:
            await publish(self.settings.kafka_bootstrap, topic, envelope, key=envelope.case_id)

    async def report(self, *, source: str, phone: str = "", email: str | None = None, signed: bool = False) -> str:
        """A case as intake publishes it: case.reported (phone masked), contact.recorded, case.accepted."""
        case_id, case_no = str(uuid.uuid4()), f"20261206-{uuid.uuid4().int % 10000:04d}"
        reported = CaseReported(
            case_no=case_no, source=source, external_id=f"x-{case_id[:8]}", description="路灯不亮",
            address="文化路12号", reporter=Reporter(name="张先生", phone="139****7001"),
            observed_at=datetime(2026, 12, 6, 9, 0, tzinfo=timezone.utc),
        ).envelope(source="intake", case_id=case_id)
        contact = ContactRecorded(case_no=case_no, name="张先生", phone=phone, email=email).envelope(
            source="intake", case_id=case_id)
        accepted = CaseAccepted(case_no=case_no, category="street-light", unit_grid="U001", description="路灯不亮",
                                address="文化路12号").envelope(source="intake", case_id=case_id)
        topics = self.service.runtime.topics
        await self.send(topics.cases, reported)
        await self.send(topics.contacts, contact)
        await self.send(topics.cases, accepted)
        if signed:
            await self.send(topics.cases, CaseSigned(case_no=case_no, owner="市政所", update_id="u-1")
                            .envelope(source="supervision", case_id=case_id))
        return case_no

    async def delivery(self, case_no: str, kind: str = "acknowledgement") -> dict:
        row = await self.service.runtime.pool.fetchrow(
            "SELECT * FROM deliveries WHERE case_no = $1 AND kind = $2", case_no, kind)
        return dict(row) if row else {}


async def until(condition, timeout: float = 20, step: float = 0.05):
    async def poll():
        while not (result := await condition() if asyncio.iscoroutinefunction(condition) else condition()):
            await asyncio.sleep(step)
        return result
    return await asyncio.wait_for(poll(), timeout)


@asynccontextmanager
async def running_street(isolated: Settings) -> AsyncIterator[Street]:
    """notify with a real SMS sink (HTTP) and a real SMTP server on free loopback ports."""
    async with sms_sink() as (sink, gateway):
        mail = MailSink(free_port()).start()
        service: Service | None = None
        try:
            settings = isolated.model_copy(update={"sms_gateway_url": f"{gateway}/sms",
                                                   "smtp_host": "127.0.0.1", "smtp_port": mail.port})
            service = build(settings, manage_runtime=False, retry_policy=FAST)
            await asyncio.wait_for(service.runtime.start(), 30)
            await service.runtime.wait_until_consuming(30)
            yield Street(service, settings, sink, mail)
        finally:
            if service is not None:
                await asyncio.wait_for(service.runtime.stop(), 30)
            mail.stop()


@pytest.fixture
async def street(isolated: Settings) -> AsyncIterator[Street]:
    async with running_street(isolated) as running:
        yield running


async def test_a_resident_who_reported_online_with_an_email_is_answered_by_email(street: Street):
    case_no = await street.report(source="web", phone=PHONE, email=EMAIL)
    [mail] = await until(lambda: street.mail.to(EMAIL))
    assert case_no in mail["text"] and case_no in mail["subject"] and "已受理" in mail["subject"]

    async def settled():  # the outcome is recorded just after the server took the message
        row = await street.delivery(case_no)
        return row if row.get("state") == "sent" else None
    delivery = await until(settled)
    assert (delivery["channel"], delivery["state"], delivery["to_phone"]) == ("email", "sent", EMAIL)
    assert mail["message_id"] == f"<{delivery['id']}@wangge.notify>"
    assert [m for m in street.sms.messages if m["to"] == PHONE] == []


async def test_the_hotline_callers_mobile_gets_sms_even_with_an_email(street: Street):
    case_no = await street.report(source="hotline", phone=PHONE, email=EMAIL)
    await until(lambda: [m for m in street.sms.messages if case_no in m["text"]])
    assert (await street.delivery(case_no))["channel"] == "sms" and street.mail.to(EMAIL) == []


async def test_an_smtp_server_down_then_up_delivers_the_reply_once(street: Street):
    street.mail.stop()
    case_no = await street.report(source="web", phone=PHONE, email=EMAIL)

    async def retried():
        row = await street.delivery(case_no)
        return row if row and row["attempts"] >= 2 else None
    row = await until(retried)
    assert row["state"] == "pending" and "SMTP" in row["last_error"]
    street.mail.start()
    await until(lambda: street.mail.to(EMAIL))

    async def sent():
        return (await street.delivery(case_no)).get("state") == "sent"
    await until(sent)
    await asyncio.sleep(1.0)
    assert len(street.mail.to(EMAIL)) == 1


async def test_an_sms_gateway_down_then_up_delivers_the_reply_once(street: Street):
    street.sms.down_until = float("inf")  # 503 until healed
    case_no = await street.report(source="hotline", phone=PHONE)

    async def retried():
        row = await street.delivery(case_no)
        return row if row and row["attempts"] >= 2 else None
    assert (await until(retried))["state"] == "pending"
    street.sms.down_until = None
    await until(lambda: [m for m in street.sms.messages if case_no in m["text"]])
    await asyncio.sleep(1.0)
    assert len([m for m in street.sms.messages if case_no in m["text"]]) == 1


# ---- webhooks ------------------------------------------------------------------------------------------------

@dataclass
class Receiver:
    """An integrator's receiver on loopback: checks the signature and the timestamp as domain/webhooks.verify does,
    processes each delivery id once; `down` answers 503; `redirect_to` answers 307 to another address."""

    secret: str = ""
    down: bool = False
    redirect_to: str | None = None
    requests: list = None  # (headers, body) of every request
    accepted: dict = None  # delivery id → body
    refused: list = None
    url: str = ""

    def app(self):
        self.requests, self.accepted, self.refused = [], {}, []
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request):
            body = await request.body()
            self.requests.append((dict(request.headers), body))
            if self.down:
                return JSONResponse({"error": "down"}, status_code=503)
            if self.redirect_to:
                return RedirectResponse(self.redirect_to, status_code=307)
            why = verify(self.secret, signature=request.headers.get("x-wangge-signature"),
                         timestamp=request.headers.get("x-wangge-timestamp"), body=body, now=_time.time())
            if why:
                self.refused.append(why)
                return JSONResponse({"error": why}, status_code=401)
            self.accepted.setdefault(request.headers["x-wangge-delivery"], _orjson.loads(body))
            return {"ok": True}

        return app


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    got = Receiver()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    got.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    server = uvicorn.Server(uvicorn.Config(got.app(), log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started, 10)
        yield got
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


ADMIN = "notify-channels-admin-token"


async def configure(street: Street, url: str, sources: list[str] | None = None, name: str = "市城管平台") -> dict:
    import httpx

    from tests.support import grant
    await grant(street.settings, street.service, token=ADMIN, name="街道管理员", role="admin")
    transport = httpx.ASGITransport(app=street.service.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://notify",
                                 headers={"Authorization": f"Bearer {ADMIN}"}) as admin:
        answer = await asyncio.wait_for(admin.post("/api/v1/admin/webhooks", json={
            "name": name, "url": url, "sources": sources or []}), 10)
    assert answer.status_code == 201, answer.text
    return answer.json()


async def test_a_configured_webhook_gets_each_reply_signed_once(street: Street, receiver: Receiver):
    endpoint = await configure(street, receiver.url, sources=["web"])
    receiver.secret = endpoint["secret"]
    assert len(endpoint["secret"]) == 64 and endpoint["url"] == receiver.url
    case_no = await street.report(source="web", phone=PHONE, signed=True)
    await until(lambda: len(receiver.accepted) == 2)
    kinds = sorted(body["kind"] for body in receiver.accepted.values())
    assert kinds == ["acknowledgement", "progress"]
    assert all(body["case_no"] == case_no and case_no in body["text"] for body in receiver.accepted.values())
    assert receiver.refused == [] and PHONE not in str(receiver.requests)
    # The resident still gets their own SMS (the webhook is a copy), and the copy is not a reply on wangge.replies.
    await until(lambda: len([m for m in street.sms.messages if case_no in m["text"]]) == 2)
    # A hotline case is not this endpoint's (it follows web reports only).
    other = await street.report(source="hotline", phone="13900007002")
    await until(lambda: [m for m in street.sms.messages if other in m["text"]])
    await asyncio.sleep(1.0)
    assert all(body["case_no"] != other for body in receiver.accepted.values())


async def test_a_webhook_down_then_up_is_delivered_once(street: Street, receiver: Receiver):
    endpoint = await configure(street, receiver.url)
    receiver.secret, receiver.down = endpoint["secret"], True
    case_no = await street.report(source="hotline", phone=PHONE)
    await until(lambda: len(receiver.requests) >= 2)
    assert receiver.accepted == {}
    receiver.down = False
    await until(lambda: len(receiver.accepted) == 1)
    await asyncio.sleep(1.0)
    [(delivery_id, body)] = receiver.accepted.items()
    assert body["case_no"] == case_no and body["kind"] == "acknowledgement"
    # Every retry carried the same idempotency key, each freshly signed.
    assert {h["x-wangge-delivery"] for h, _ in receiver.requests} == {delivery_id}
    row = await street.service.runtime.pool.fetchrow("SELECT state, attempts FROM deliveries WHERE id = $1::uuid",
                                                     delivery_id)
    assert row["state"] == "sent" and row["attempts"] >= 3


async def test_an_open311_report_with_only_an_email_is_acknowledged_by_email_and_never_shows_it(street: Street):
    """Open311's `email` field, end to end: intake keeps it for notify alone (case.reported carries it masked)."""
    import httpx

    from services.intake.bootstrap import build as build_intake
    from tests.support import TopicReader, grant

    async with running(build_intake(street.settings, manage_runtime=False)) as intake:
        await grant(street.settings, intake, token="o311-city-portal", name="市民网站", role="hotline")
        async with TopicReader(street.settings.kafka_bootstrap, street.service.runtime.topics.cases) as cases:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=intake.app), base_url="http://intake",
                                         timeout=10) as http:
                bad = await http.post("/open311/v2/requests.json", data={
                    "api_key": "o311-city-portal", "service_code": "CM04", "lat": "34.871845", "long": "117.575168",
                    "description": "垃圾箱损坏", "email": "not an address"})
                assert bad.status_code == 400 and "email" in bad.json()[0]["description"]
                posted = await http.post("/open311/v2/requests.json", data={
                    "api_key": "o311-city-portal", "service_code": "CM04", "lat": "34.871845", "long": "117.575168",
                    "description": "垃圾箱损坏", "first_name": "王", "email": EMAIL})
                assert posted.status_code == 201, posted.text
                case_no = posted.json()[0]["service_request_id"]
            reported = await cases.wait_for(lambda m: m.get("type") == "case.reported"
                                            and m["data"]["case_no"] == case_no, timeout=20)
            assert reported["data"]["reporter"]["email"] == "z***@example.cn" and EMAIL not in str(reported)
        [mail] = await until(lambda: street.mail.to(EMAIL), timeout=30)
        assert case_no in mail["text"] and "已受理" in mail["subject"]


async def test_the_residents_email_is_erased_with_their_phone_after_the_survey_window(isolated: Settings):
    from datetime import timedelta

    from shared.clock import now
    from shared.contracts.cases import CaseClosed

    settings = isolated.model_copy(update={"erase_after_days": 0.0, "erasure_poll_seconds": 0.2})
    async with running_street(settings) as street:
        case_no = await street.report(source="web", phone=PHONE, email=EMAIL)
        await until(lambda: street.mail.to(EMAIL))
        pool = street.service.runtime.pool
        case_id = await pool.fetchval("SELECT case_id FROM contacts WHERE case_no = $1", case_no)
        # Closed eight days ago: the seven-day survey window closed yesterday, erase_after_days is 0.
        closed = CaseClosed(case_no=case_no, owner="市政所", outcome="resolved", result="已修复", by="operator:x",
                            closed_at=now() - timedelta(days=8), on_time=True)
        await street.send(street.service.runtime.topics.cases, closed.envelope(source="supervision", case_id=case_id))

        async def erased():
            return await pool.fetchval("SELECT count(*) FROM erasures WHERE case_id = $1", case_id)
        await until(erased, timeout=30)
        assert await pool.fetchval("SELECT count(*) FROM contacts WHERE case_id = $1", case_id) == 0
        addresses = [r["to_phone"] for r in await pool.fetch("SELECT to_phone FROM deliveries WHERE case_id = $1",
                                                             case_id)]
        assert addresses and not any(EMAIL in a or "zhang.san" in a for a in addresses)


async def test_an_email_only_resident_whose_report_was_merged_hears_the_followed_case_by_email(street: Street):
    """Two residents who gave only an e-mail: one reported the open case, the other a duplicate merged into it. Each
    hears the open case's progress at their own address (an empty phone is nobody's: they are two people)."""
    from shared.contracts.cases import CaseMerged

    target_email, follower_email = "li.si@example.cn", "wang.wu@example.cn"
    target_no = await street.report(source="web", email=target_email)
    async def target_known():
        return await street.service.runtime.pool.fetchval("SELECT case_id FROM case_status WHERE case_no = $1",
                                                          target_no)
    target_id = await until(target_known)
    duplicate_id, duplicate_no = str(uuid.uuid4()), f"20261206-{uuid.uuid4().int % 10000:04d}"
    topics = street.service.runtime.topics
    reported = CaseReported(case_no=duplicate_no, source="web", external_id=f"x-{duplicate_id[:8]}",
                            description="同一个路灯", address="文化路12号", reporter=Reporter(email="w***@example.cn"),
                            observed_at=datetime(2026, 12, 6, 9, 0, tzinfo=timezone.utc))
    await street.send(topics.cases, reported.envelope(source="intake", case_id=duplicate_id))
    await street.send(topics.contacts, ContactRecorded(case_no=duplicate_no, email=follower_email)
                      .envelope(source="intake", case_id=duplicate_id))
    await street.send(topics.cases, CaseMerged(case_no=duplicate_no, into_case_id=target_id, into_case_no=target_no)
                      .envelope(source="intake", case_id=duplicate_id))
    await until(lambda: [m for m in street.mail.to(follower_email) if target_no in m["text"]])  # told of the merge
    await street.send(topics.cases, CaseSigned(case_no=target_no, owner="市政所", update_id="u-9")
                      .envelope(source="supervision", case_id=target_id))

    def signed(address: str) -> list:
        return [m for m in street.mail.to(address) if "签收" in m["text"] and target_no in m["text"]]
    await until(lambda: signed(target_email) and signed(follower_email))
    assert len(signed(target_email)) == 1 and len(signed(follower_email)) == 1

"""Replies on the resident's channel, against real local servers: the SMS gateway (deploy/local/sms_sink.py), an
SMTP server (deploy/local/mail_sink.py, aiosmtpd) and an integrator's HTTPS-less loopback webhook receiver.
Each server down, then up: the reply is delivered once."""
from __future__ import annotations

import asyncio
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import AsyncIterator

import pytest
import uvicorn

from deploy.local.mail_sink import MailSink
from deploy.local.sms_sink import SinkState, create_sink_app
from shared.contracts import Envelope
from shared.contracts.cases import CaseAccepted, CaseReported, CaseSigned
from shared.contracts.common import Reporter
from shared.contracts.contacts import ContactRecorded
from shared.runtime import Service
from shared.settings import Settings
from services.notify.bootstrap import build
from services.notify.domain.delivery import RetryPolicy
from tests.support import publish

pytestmark = pytest.mark.integration

FAST = RetryPolicy(base_seconds=0.2, cap_seconds=0.5, jitter=0.5, lease_seconds=30)
EMAIL = "zhang.san@example.cn"
PHONE = "13900007001"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


@pytest.fixture
async def street(isolated: Settings) -> AsyncIterator[Street]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sms_port = sock.getsockname()[1]
    sink_app = create_sink_app()
    server = uvicorn.Server(uvicorn.Config(sink_app, log_level="warning", lifespan="off"))
    server_task = asyncio.create_task(server.serve(sockets=[sock]))
    mail = MailSink(free_port()).start()
    service: Service | None = None
    try:
        await until(lambda: server.started, 10)
        settings = isolated.model_copy(update={"sms_gateway_url": f"http://127.0.0.1:{sms_port}/sms",
                                               "smtp_host": "127.0.0.1", "smtp_port": mail.port})
        service = build(settings, manage_runtime=False, retry_policy=FAST)
        await asyncio.wait_for(service.runtime.start(), 30)
        await service.runtime.wait_until_consuming(30)
        yield Street(service, settings, sink_app.state.sink, mail)
    finally:
        if service is not None:
            await asyncio.wait_for(service.runtime.stop(), 30)
        mail.stop()
        server.should_exit = True
        await asyncio.wait_for(server_task, 10)
        sock.close()


async def test_a_resident_who_reported_online_with_an_email_is_answered_by_email(street: Street):
    case_no = await street.report(source="web", phone=PHONE, email=EMAIL)
    [mail] = await until(lambda: street.mail.to(EMAIL))
    assert case_no in mail["text"] and case_no in mail["subject"] and "已受理" in mail["subject"]
    delivery = await street.delivery(case_no)
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

"""A running notify service and the SMS gateway stand-in it sends to, for the tests of notify (and of those that
read its replies): the `notify` fixture, `notify_running` with a clock of the test's, and a case's first events."""
from __future__ import annotations

import asyncio
import socket
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import AsyncIterator

import httpx
import pytest
import uvicorn

from deploy.local.sms_sink import SinkState, create_sink_app
from shared.clock import Clock
from shared.contracts import Envelope
from shared.contracts.cases import CaseAccepted, CaseReported
from shared.contracts.common import Reporter
from shared.runtime import Service
from shared.settings import Settings
from services.notify.bootstrap import build
from services.notify.domain.delivery import RetryPolicy
from tests.support import grant, publish, running

PHONE = "13900001001"
OPERATOR = "notify-test-operator-token"
GATEWAY_TOKEN = "notify-test-gateway-token"
# Retries in tenths of a second instead of minutes, so an outage of a few seconds is a short test.
FAST = RetryPolicy(base_seconds=0.2, cap_seconds=1.0, jitter=0.5, lease_seconds=30)


@dataclass
class Notify:
    """A running notify service and the gateway it sends to."""

    service: Service
    settings: Settings
    sink: SinkState
    gateway: str  # base URL of the sink

    async def cases(self, *envelopes: Envelope) -> None:
        """Publish case events as intake would (key = case id)."""
        for envelope in envelopes:
            await publish(self.settings.kafka_bootstrap, self.service.runtime.topics.cases, envelope, key=envelope.case_id)

    def sms_to(self, phone: str) -> list[dict]:
        return [m for m in self.sink.messages if m["to"] == phone]

    def http(self, client_ip: str = "127.0.0.1", token: str | None = None) -> httpx.AsyncClient:
        """An HTTP client on notify's app in this process, as if calling from `client_ip`."""
        transport = httpx.ASGITransport(app=self.service.app, client=(client_ip, 40000))
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(transport=transport, base_url="http://notify", headers=headers, timeout=10)

    async def operator(self) -> httpx.AsyncClient:
        """A client with an operator's credential, once notify has learnt it."""
        await grant(self.settings, self.service, token=OPERATOR, name="值班员甲", role="operator")
        return self.http(token=OPERATOR)


@pytest.fixture
async def notify(isolated: Settings) -> AsyncIterator[Notify]:
    """The sink on a free loopback port (in this event loop) and notify built and started against it."""
    async with notify_running(isolated) as running_notify:
        yield running_notify


@asynccontextmanager
async def notify_running(isolated: Settings, clock: Clock | None = None) -> AsyncIterator[Notify]:
    """As the fixture, with the clock a test hands notify's build (None: the street's time)."""
    async with sms_sink() as (sink, gateway):
        settings = isolated.model_copy(update={"sms_gateway_url": f"{gateway}/sms", "sms_inbound_token": GATEWAY_TOKEN})
        async with running(build(settings, manage_runtime=False, retry_policy=FAST, clock=clock), timeout=30) as service:
            yield Notify(service, settings, sink, gateway)


@asynccontextmanager
async def sms_sink() -> AsyncIterator[tuple[SinkState, str]]:
    """The SMS gateway's stand-in (deploy/local/sms_sink.py) on a free loopback port in this event loop: what it
    received, and its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sink_app = create_sink_app()
    server = uvicorn.Server(uvicorn.Config(sink_app, log_level="warning", lifespan="off"))
    server_task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await asyncio.wait_for(until(lambda: server.started), 10)
        yield sink_app.state.sink, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(server_task, 10)
        sock.close()


async def until(condition, step: float = 0.05) -> None:
    while not condition():
        await asyncio.sleep(step)


def case_events(phone: str | None) -> tuple[str, str, Envelope, Envelope]:
    case_id = str(uuid.uuid4())
    case_no = f"20261127-{uuid.uuid4().int % 10000:04d}"
    reported = CaseReported(
        case_no=case_no, source="hotline", external_id=f"h-{case_id[:8]}", description="路灯不亮",
        address="文化路12号", reporter=Reporter(name="张先生", phone=phone) if phone else None,
        observed_at=datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc),
    ).envelope(source="intake", case_id=case_id)
    accepted = CaseAccepted(
        case_no=case_no, category="street-light", unit_grid="U001", description="路灯不亮", address="文化路12号",
    ).envelope(source="intake", case_id=case_id)
    return case_id, case_no, reported, accepted

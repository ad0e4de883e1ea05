"""All four services in-process on the real Kafka and PostgreSQL, with a local fake SMS gateway and a local SMTP
server (deploy/local/mail_sink.py)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import AsyncIterator, Iterator

import pytest
import uvicorn

from deploy.local.mail_sink import MailSink
from deploy.local.sms_sink import create_sink_app
from services.intake.bootstrap import build as build_intake
from services.notify.bootstrap import build as build_notify
from services.routing.bootstrap import build as build_routing
from services.supervision.bootstrap import build as build_supervision
from shared.runtime import Service
from shared.settings import Settings
from tests.support import free_port, grant  # noqa: F401  (free_port: imported from here by other tests)

TERMINAL_TOKEN = "e2e-terminal"



@dataclass
class Street:
    """The running system of one test."""

    settings: Settings
    intake: Service
    routing: Service
    supervision: Service
    notify: Service
    sms_sink_url: str
    sms_sink: object  # the sink's FastAPI app (its state holds what it received)
    mail: MailSink | None = None  # the SMTP server notify sends e-mail to (what it received: mail.to(address))


@pytest.fixture
async def sms_gateway() -> AsyncIterator[tuple[str, object]]:
    """The fake SMS gateway on a free loopback port."""
    app = create_sink_app()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    for _ in range(100):
        if server.started:
            break
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
def mail_sink() -> Iterator[MailSink]:
    """The local SMTP server (aiosmtpd) on a free loopback port."""
    sink = MailSink(free_port()).start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
async def street(isolated, sms_gateway, mail_sink) -> AsyncIterator[Street]:
    """intake, routing, supervision and notify started on the test's own topics and schemas."""
    base_url, sink_app = sms_gateway
    settings = isolated.model_copy(update={"sms_gateway_url": f"{base_url}/sms", "smtp_host": "127.0.0.1",
                                           "smtp_port": mail_sink.port})
    services = [build(settings, manage_runtime=False)
                for build in (build_intake, build_routing, build_supervision, build_notify)]
    started: list[Service] = []
    try:
        for service in services:
            await asyncio.wait_for(service.runtime.start(), 60)
            started.append(service)
        for service in services:
            await service.runtime.wait_until_consuming(60)
        await grant(settings, *services, token=TERMINAL_TOKEN, name="网格员001终端", role="terminal",
                    worker_id="W001", device_id="SZT-0001")
        yield Street(settings, *services, sms_sink_url=base_url, sms_sink=sink_app, mail=mail_sink)
    finally:
        for service in reversed(started):
            await service.runtime.stop()


# The front door (nginx) and the real browser, for the page tests (defined there, made fixtures here).
from tests.e2e.frontdoor import browser, front_door  # noqa: E402,F401

"""Case events as the services put them on wangge.cases, and a supervision instance to receive them: what the tests
of supervision (and of those that read its answers) send it; an owner's updates, and a client of its HTTP API."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import httpx

from services.supervision.bootstrap import build
from shared.clock import now
from shared.contracts import Envelope
from shared.contracts.cases import CaseAccepted, CaseDispatched, CaseReported
from shared.contracts.common import TimeLimit
from shared.runtime import Service
from shared.settings import Settings
from shared.topics import Topics
from tests.support import eventually, publish

UNIT_GRID = "3704020010010101"
COMMUNITY = "370402001001"


async def start(settings: Settings) -> Service:
    """A supervision instance, started and consuming."""
    service = build(settings, manage_runtime=False)
    await asyncio.wait_for(service.runtime.start(), 60)
    try:
        await service.runtime.wait_until_consuming(60)
    except BaseException:
        await asyncio.wait_for(service.runtime.stop(), 30)
        raise
    return service


def reported(case_id: str, case_no: str) -> Envelope:
    return CaseReported(
        case_no=case_no, source="terminal", external_id=f"ext-{case_no}", category="CM04",
        description="垃圾箱破损，垃圾外溢", observed_at=now(), unit_grid=UNIT_GRID,
    ).envelope(source="intake", case_id=case_id)


def accepted(case_id: str, case_no: str) -> Envelope:
    return CaseAccepted(case_no=case_no, category="CM04", unit_grid=UNIT_GRID, description="垃圾箱破损，垃圾外溢") \
        .envelope(source="intake", case_id=case_id)


def dispatched(case_id: str, case_no: str, *, owner: str, category: str, limit: TimeLimit,
               at: datetime, due: datetime) -> Envelope:
    return CaseDispatched(
        case_no=case_no, owner=owner, category=category, unit_grid=UNIT_GRID, priority="normal",
        time_limit=limit, dispatched_at=at, due_at=due,
    ).envelope(source="routing", case_id=case_id)


async def send(settings: Settings, *envelopes: Envelope) -> None:
    for envelope in envelopes:
        await publish(settings.kafka_bootstrap, Topics(settings.topic_prefix).cases, envelope, key=envelope.case_id)


OWNER, OTHER = "huanwei", "chengguan"


async def open_case(settings, pool, *, limit=TimeLimit(value=4, unit="hours"), owner=OWNER) -> tuple[str, str]:
    """A case reported, accepted and dispatched to `owner`, as supervision sees it."""
    case_id, case_no = f"case-{uuid.uuid4().hex[:8]}", f"20261128-{uuid.uuid4().int % 10000:04d}"
    at = now().replace(microsecond=0)
    await send(settings, reported(case_id, case_no), accepted(case_id, case_no),
               dispatched(case_id, case_no, owner=owner, category="CM04", limit=limit, at=at,
                          due=at + timedelta(hours=limit.value)))
    await eventually(lambda: pool.fetchval("SELECT state = 'dispatched' FROM cases WHERE case_id = $1", case_id))
    return case_id, case_no


async def update(settings, case_id: str, event, update_id: str | None = None) -> Envelope:
    """An owner publishes an update on wangge.task-updates, as the contract says."""
    envelope = event.envelope(source=f"owner-{event.owner}", case_id=case_id)
    if update_id:
        envelope = envelope.model_copy(update={"id": update_id})
    await publish(settings.kafka_bootstrap, Topics(settings.topic_prefix).task_updates, envelope, key=case_id)
    return envelope


async def state_of(pool, case_id: str, state: str, timeout: float = 20) -> None:
    await eventually(lambda: pool.fetchval("SELECT state = $2 FROM cases WHERE case_id = $1", case_id, state), timeout)


def http(service, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://supervision",
                             headers={"Authorization": f"Bearer {token}"}, timeout=10)

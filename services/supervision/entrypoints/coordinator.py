"""The coordinator's (网格员) own reads for the /grid/ screen: what became of their reports, and the on-site checks
(核查) waiting in their unit grids. Role terminal (a coordinator's credential or account: Client.worker_id)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from services.supervision.adapters import coordinator_views as views
from services.supervision.domain import coordinator, report_cursor
from services.supervision.domain.policy import StreetPolicy
from shared.auth import Client, require
from shared.http import refusal
from shared.runtime import ServiceRuntime

terminal = require("terminal")


class CoordinatorReport(BaseModel):
    """One of the coordinator's reports as it stands now (personal data is never in it)."""

    case_no: str | None
    state: str | None
    state_label: str = Field(description="the state in Chinese (待受理, 已派遣（待签收）, 处置中, 已结案 …)")
    category: str | None
    category_name: str | None
    description: str | None
    address: str | None
    reported_at: datetime | None
    media: list[str] = Field(description="the report's photos (URLs)")
    holder: str | None = Field(description="who holds the case now (the owner's name), null before dispatch")
    owner: str | None = Field(description="the holder's owner code")
    resolved_at: datetime | None
    result: str | None = Field(description="what the owner (or the coordinator, fixed on the spot) did")
    outcome: str | None = Field(description="fixed_on_the_spot, resolved, explained, rejected or merged; null while open")
    outcome_label: str | None = Field(description="the outcome in Chinese")


class CoordinatorReports(BaseModel):
    reports: list[CoordinatorReport]
    next: str | None = Field(description="the cursor of the next page (?cursor=…), null on the last")


class PendingCheck(BaseModel):
    """A resolved or explained case of the coordinator's unit grids, waiting for the on-site check."""

    case_no: str | None
    state: str | None
    state_label: str
    category: str | None
    category_name: str | None
    description: str | None
    address: str | None
    location: dict[str, float] | None = Field(description="{lon, lat} (WGS84) where it was reported")
    unit_grid: str | None
    result: str | None
    result_media: list[str] = Field(description="the owner's photos of the result (URLs)")
    resolved_at: datetime | None = Field(description="when the owner resolved (or explained) it")
    explanation: str | None = Field(description="解释说明 of an explained case")
    holder: str | None
    owner: str | None


class PendingChecks(BaseModel):
    checks: list[PendingCheck]


def _worker_of(client: Client, policy: StreetPolicy) -> tuple[str, tuple[str, ...]]:
    if not client.worker_id:
        raise HTTPException(403, "this terminal credential names no coordinator (worker_id) (凭证未绑定网格员)")
    return client.worker_id, policy.unit_grids_of_worker(client.worker_id)


def build_coordinator_router(runtime: ServiceRuntime, policy: StreetPolicy) -> APIRouter:
    router = APIRouter(prefix="/api/v1/coordinator", tags=["coordinator"])
    zone = policy.calendar.zone

    def label(code: str | None) -> str | None:
        return policy.category_label(code) if code else None

    @router.get("/reports", responses={200: {"model": CoordinatorReports},
                                       400: refusal("the cursor is garbled or was issued to another coordinator")})
    async def reports(
        cursor: str | None = Query(default=None, max_length=report_cursor.MAX_CURSOR_CHARS,
                                   description="`next` of the previous page; none for the first"),
        limit: int = Query(default=50, ge=1, le=200, description="reports per page"),
        client: Client = Depends(terminal),
    ) -> dict[str, Any]:
        """The calling coordinator's own reports, newest first, with their state and outcome, a page at a time."""
        worker, _grids = _worker_of(client, policy)
        try:
            after = report_cursor.decode(cursor, worker) if cursor is not None else None
        except report_cursor.BadCursor as bad:
            raise HTTPException(400, str(bad))
        rows, last = await views.own_reports(runtime.pool, worker, zone, limit, after)
        listed = [{"case_no": r["case_no"], "state": r["state"], "state_label": coordinator.state_label(r["state"]),
                   "category": r["category"], "category_name": label(r["category"]), "description": r["description"],
                   "address": r["address"], "reported_at": r["reported_at"], "media": list(r["report_media"] or []),
                   "holder": (r["owner_name"] or r["owner"]) if r["owner"] else None, "owner": r["owner"],
                   "resolved_at": r["resolved_at"], "result": r["result"], "outcome": coordinator.outcome(r),
                   "outcome_label": coordinator.outcome_label(r)} for r in rows]
        return {"reports": listed, "next": report_cursor.encode(worker, last) if last else None}

    @router.get("/checks", responses={200: {"model": PendingChecks}})
    async def checks(client: Client = Depends(terminal)) -> dict[str, Any]:
        """The cases of the calling coordinator's unit grids that wait for the on-site check (核查), the longest
        waiting first; pass or fail each with POST /api/v1/cases/{case_no}/check."""
        _worker, grids = _worker_of(client, policy)
        rows = await views.awaiting_check(runtime.pool, grids, zone) if grids else []
        listed = [{"case_no": r["case_no"], "state": r["state"], "state_label": coordinator.state_label(r["state"]),
                   "category": r["category"], "category_name": label(r["category"]), "description": r["description"],
                   "address": r["address"], "location": r["location"], "unit_grid": r["unit_grid"],
                   "result": r["result"], "result_media": list(r["result_media"] or []), "resolved_at": r["resolved_at"],
                   "explanation": r["explanation"], "holder": (r["owner_name"] or r["owner"]) if r["owner"] else None,
                   "owner": r["owner"]} for r in rows]
        return {"checks": listed}

    return router

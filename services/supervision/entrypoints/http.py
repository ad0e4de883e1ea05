"""Supervision's HTTP API: thin routes over the read model and the handlers."""
from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Path, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from services.supervision.adapters import views
from services.supervision.domain.policy import StreetPolicy
from services.supervision.domain.states import STATES
from services.supervision.handlers import CommandCenter, Outcome, OwnerUpdates
from shared.auth import Client, require
from shared.clock import now
from shared.runtime import ServiceRuntime

CaseState = Literal[STATES]  # type: ignore[valid-type]  # 422 with the allowed values for anything else
CaseNo = Path(min_length=1, max_length=50, pattern=r"^[0-9A-Za-z-]+$")
operator = require("operator", "admin")
owner_only = require("owner")


class CheckBody(BaseModel):
    """核查: did the on-site check find the problem solved?"""

    model_config = ConfigDict(extra="forbid")
    passed: bool
    note: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _failure_says_why(self) -> "CheckBody":
        if not self.passed and not (self.note and self.note.strip()):
            raise ValueError("a failed check needs a note: what the owner must still do (返工说明)")
        return self


class ExtensionBody(BaseModel):
    """延期审批: approved (until: the new deadline, default what the owner asked for) or denied."""

    model_config = ConfigDict(extra="forbid")
    approved: bool
    until: AwareDatetime | None = None
    note: str | None = Field(default=None, max_length=1000)


class SuspendBody(BaseModel):
    """挂起: why the clock stops."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500)


def _answer(case_no: str, outcome: Outcome) -> dict[str, Any]:
    """200 with the case's new state, or the refusal as a 4xx with its reason."""
    if outcome.refused is not None:
        raise HTTPException(outcome.refused.status, outcome.refused.reason)
    answer: dict[str, Any] = {"case_no": case_no, "state": outcome.state, "event": outcome.event_type}
    if outcome.duplicate:
        answer["duplicate"] = True
    if outcome.due_at is not None:
        answer["due_at"] = outcome.due_at
    return answer


def build_router(runtime: ServiceRuntime, policy: StreetPolicy, updates: OwnerUpdates,
                 center: CommandCenter) -> APIRouter:
    """The /api/v1 routes of supervision: operators read and decide cases, owners see and answer their tasks."""
    router = APIRouter(prefix="/api/v1", tags=["supervision"])
    zone = policy.calendar.zone

    @router.get("/cases/{case_no}")
    async def get_case(case_no: str = CaseNo, _: Client = Depends(operator)) -> dict[str, Any]:
        """One case: its read model, its clocks and its event history (personal data masked)."""
        case = await views.case_detail(runtime.pool, case_no, zone)
        if case is None:
            raise HTTPException(404, f"no case numbered {case_no!r} is known to supervision "
                                     "(not reported, or its events have not arrived yet)")
        return case

    @router.get("/cases")
    async def list_cases(
        state: CaseState | None = None,
        owner: str | None = Query(default=None, min_length=1, max_length=50),
        community: str | None = Query(default=None, min_length=1, max_length=50, description="a community grid code"),
        unit_grid: str | None = Query(default=None, min_length=1, max_length=50),
        category: str | None = Query(default=None, min_length=1, max_length=20),
        overdue: bool | None = Query(default=None, description="open cases past their deadline (true) or not (false)"),
        due_before: AwareDatetime | None = Query(default=None, description="deadline before this moment (ISO 8601 with offset)"),
        limit: int = Query(default=50, ge=1, le=500),
        _: Client = Depends(operator),
    ) -> dict[str, Any]:
        """Open and past cases, most recently changed first, with the filters of DESIGN.md."""
        grids = [unit_grid] if unit_grid else None
        if community is not None:
            in_community = policy.unit_grids_of(community)
            if not in_community:
                raise HTTPException(422, f"no community {community!r} in this street")
            grids = [g for g in in_community if grids is None or g in grids]
        cases = await views.list_cases(runtime.pool, zone, state=state, owner=owner, unit_grids=grids, category=category,
                                       overdue=overdue, due_before=due_before, limit=limit)
        return {"count": len(cases), "cases": cases}

    @router.post("/cases/{case_no}/check")
    async def check(body: CheckBody, case_no: str = CaseNo, client: Client = Depends(operator)) -> dict[str, Any]:
        """核查 a resolved or explained case: pass → closed (the resident hears the result), fail → rework."""
        return _answer(case_no, await center.check(case_no, passed=body.passed, note=body.note, by=client.actor))

    @router.post("/cases/{case_no}/extension")
    async def extension(body: ExtensionBody, case_no: str = CaseNo, client: Client = Depends(operator)) -> dict[str, Any]:
        """Decide the owner's extension request: approved → a new deadline; denied → the old one stands."""
        outcome = await center.decide_extension(case_no, approved=body.approved, until=body.until, note=body.note,
                                                by=client.actor)
        return _answer(case_no, outcome)

    @router.post("/cases/{case_no}/suspend")
    async def suspend(body: SuspendBody, case_no: str = CaseNo, client: Client = Depends(operator)) -> dict[str, Any]:
        """挂起 a case in progress: its handling clock stops with the time left kept."""
        return _answer(case_no, await center.suspend(case_no, suspend=True, reason=body.reason, by=client.actor))

    @router.post("/cases/{case_no}/resume")
    async def resume(case_no: str = CaseNo, client: Client = Depends(operator)) -> dict[str, Any]:
        """Resume a suspended case: the clock runs again with the time that was left."""
        return _answer(case_no, await center.suspend(case_no, suspend=False, reason=None, by=client.actor))

    @router.get("/tasks")
    async def tasks(limit: int = Query(default=100, ge=1, le=500), client: Client = Depends(owner_only)) -> dict[str, Any]:
        """The calling owner's open tasks, nearest deadline first."""
        assert client.owner_code is not None
        listed = await views.owner_tasks(runtime.pool, client.owner_code, zone, limit)
        return {"owner": client.owner_code, "count": len(listed), "tasks": listed}

    @router.post("/tasks/{case_no}/updates")
    async def update_task(
        case_no: str = CaseNo,
        body: dict[str, Any] = Body(
            description="the update as on wangge.task-updates: {type, …its fields}; optional id (the update's id: "
                        "a repeat with the same id changes nothing)",
            examples=[{"type": "task.accepted"}, {"type": "task.resolved", "result": "已更换垃圾箱", "media": []}]),
        idempotency_key: str | None = Header(default=None, max_length=100),
        client: Client = Depends(owner_only),
    ) -> dict[str, Any]:
        """An owner's update of its own task (签收, progress, resolved, returned, extension request, explanation…)."""
        assert client.owner_code is not None
        update_id = body.get("id") if isinstance(body.get("id"), str) else idempotency_key
        if update_id is not None and not 1 <= len(update_id) <= 100:
            raise HTTPException(422, "id: 1 to 100 characters")
        return _answer(case_no, await updates.submit(client.owner_code, case_no, body, update_id))

    @router.get("/stats/summary")
    async def stats_summary(_: Client = Depends(operator)) -> dict[str, Any]:
        """Counts by state, overdue now, and the on-time share of finished cases."""
        return {"as_of": now().astimezone(zone), **await views.summary(runtime.pool)}

    return router

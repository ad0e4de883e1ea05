"""Routing's HTTP API: locating a point in the grids, the categories, the owners, manual dispatch.

The street's reference data is read by anyone holding a credential (terminals locate, owners look
up categories); dispatching is the command center's.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.auth import Client, require
from shared.http import NONBLANK
from shared.messagebus import MessageBus
from shared.runtime import ServiceRuntime
from services.routing import views

anyone = require("terminal", "hotline", "owner", "operator", "admin", "screen")
# The categories' names are no secret: a resident (/my/) picks one for their report.
with_residents = require("terminal", "hotline", "owner", "operator", "admin", "screen", "resident")
from services.routing.domain.redispatching import ManualDispatchRefused
from services.routing.handlers import CaseNotRouted, DispatchByHand


class LimitView(BaseModel):
    value: float
    unit: str


class CategoryView(BaseModel):
    code: str
    group: str
    name: str
    owner: str
    limit: LimitView
    urgency: str


class OwnerView(BaseModel):
    code: str
    name: str
    kind: str
    task_topic: str


class GridNames(BaseModel):
    unit_grid: str
    foundation_grid: str | None
    community: str | None


class GridLocation(BaseModel):
    unit_grid: str
    foundation_grid: str | None
    community: str | None
    names: GridNames


class DispatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)] = Field(
        description="an owner code: a department's code or a community's grid code (GET /api/v1/owners)",
        json_schema_extra=NONBLANK)
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)] = Field(
        description="why it is dispatched by hand; the new owner sees it as the task's note", json_schema_extra=NONBLANK)


class DispatchAnswer(BaseModel):
    case_no: str
    owner: str
    owner_name: str | None
    dispatched_at: datetime
    due_at: datetime
    previous_owner: str | None = Field(description="the holder that was recalled, if any")


# A refused manual dispatch: an owner code that does not exist is a bad request body; a closed case
# or one the owner holds already conflicts with the case's state.
REFUSAL_STATUS = {"unknown_owner": 422, "closed": 409, "held_already": 409}

NO_STREET = "尚未加载街道数据 / no street is loaded: run `python -m services.routing load-street`"


def build_router(runtime: ServiceRuntime, grid_index: views.GridIndexCache, bus: MessageBus) -> APIRouter:
    """The /api/v1 routes of routing."""
    router = APIRouter(prefix="/api/v1", tags=["routing"])

    @router.get("/grids/locate", response_model=GridLocation, responses={404: {"description": "outside the street"}})
    async def locate(
        lon: float = Query(ge=-180, le=180, description="WGS84 longitude"),
        lat: float = Query(ge=-90, le=90, description="WGS84 latitude"),
        _: Client = Depends(anyone),
    ) -> dict[str, Any]:
        """The unit grid, foundation grid and community at a WGS84 point."""
        index = await grid_index.get(runtime.pool)
        if index is None:
            raise HTTPException(503, NO_STREET)
        found = index.locate(lon, lat)
        if found is None:
            raise HTTPException(404, f"该位置不在本街道的任何单元网格内 / ({lon}, {lat}) is not inside any unit grid of this street")
        return found

    @router.get("/categories", response_model=list[CategoryView])
    async def categories(_: Client = Depends(with_residents)) -> list[dict[str, Any]]:
        """Case categories with their owner, time limit and urgency."""
        return await views.categories(runtime.pool)

    @router.get("/owners", response_model=list[OwnerView])
    async def owners(_: Client = Depends(anyone)) -> list[dict[str, Any]]:
        """Who receives tasks: the command center, departments, utilities and communities."""
        return await views.owners(runtime.pool, runtime.topics)

    @router.post(
        "/cases/{case_no}/dispatch", response_model=DispatchAnswer,
        responses={404: {"description": "routing never dispatched this case"},
                   409: {"description": "the case is closed, or the owner holds it already"},
                   422: {"description": "not an owner code, or the body does not fit"}},
    )
    async def dispatch(
        body: DispatchRequest,
        case_no: str = Path(min_length=1, max_length=50),
        client: Client = Depends(require("operator", "admin")),
    ) -> dict[str, Any]:
        """派遣/改派: send a case to an owner by hand; a current holder gets task.recalled."""
        try:
            done = await bus.handle(DispatchByHand(case_no, owner=body.owner, reason=body.reason, by=client.actor))
        except CaseNotRouted:
            raise HTTPException(404, f"没有案件 {case_no} / routing has not dispatched a case numbered {case_no}") from None
        except ManualDispatchRefused as refused:
            raise HTTPException(REFUSAL_STATUS[refused.kind], refused.reason) from None
        a = done.plan.assignment
        return {
            "case_no": done.case_no, "owner": a.owner.code, "owner_name": a.owner.name or None,
            "dispatched_at": done.plan.dispatched_at, "due_at": done.plan.due_at, "previous_owner": done.previous_owner,
        }

    return router

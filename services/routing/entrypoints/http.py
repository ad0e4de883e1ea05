"""Routing's HTTP API: locating a point in the grids, the categories, the owners.

TODO(credentials, later issue): every endpoint here but health checks will require a credential
with a role (operator, admin; terminals for locate), as DESIGN.md's HTTP surfaces section says.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from shared.runtime import ServiceRuntime
from services.routing import views


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


NO_STREET = "尚未加载街道数据 / no street is loaded: run `python -m services.routing load-street`"


def build_router(runtime: ServiceRuntime, grid_index: views.GridIndexCache) -> APIRouter:
    """The /api/v1 routes of routing."""
    router = APIRouter(prefix="/api/v1", tags=["routing"])

    @router.get("/grids/locate", response_model=GridLocation, responses={404: {"description": "outside the street"}})
    async def locate(
        lon: float = Query(ge=-180, le=180, description="WGS84 longitude"),
        lat: float = Query(ge=-90, le=90, description="WGS84 latitude"),
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
    async def categories() -> list[dict[str, Any]]:
        """Case categories with their owner, time limit and urgency."""
        return await views.categories(runtime.pool)

    @router.get("/owners", response_model=list[OwnerView])
    async def owners() -> list[dict[str, Any]]:
        """Who receives tasks: the command center, departments, utilities and communities."""
        return await views.owners(runtime.pool, runtime.topics)

    return router

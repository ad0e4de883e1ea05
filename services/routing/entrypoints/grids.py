"""The street's grid polygons as GeoJSON (GET /api/v1/grids), for the screens' maps: drawn from the street's
own data, no outside tiles. Any credential may read them, like routing's other reference data."""
from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from shared.auth import Client, require
from shared.runtime import ServiceRuntime

anyone = require("terminal", "hotline", "owner", "operator", "admin", "screen")
Level = Literal["community", "foundation", "unit"]


class GridProperties(BaseModel):
    code: str
    name: str
    level: Level
    parent: str | None = Field(description="the grid one level up (null for a community)")
    community: str = Field(description="the community (基本网格) it lies in (itself for a community)")
    households: int | None


class GridFeature(BaseModel):
    type: Literal["Feature"]
    id: str = Field(description="the grid's code")
    properties: GridProperties
    geometry: dict[str, Any] = Field(description="GeoJSON Polygon or MultiPolygon, WGS84 (lon, lat)")


class GridCollection(BaseModel):
    type: Literal["FeatureCollection"]
    features: list[GridFeature]


def build_grids_router(runtime: ServiceRuntime) -> APIRouter:
    """GET /api/v1/grids."""
    router = APIRouter(prefix="/api/v1", tags=["routing"])

    @router.get("/grids", response_model=GridCollection, responses={503: {"description": "no street loaded yet"}})
    async def grids(
        level: Level | None = Query(default=None, description="only this level (单元网格 unit, 基础网格 foundation, "
                                                                 "基本网格 community); all levels if absent"),
        community: str | None = Query(default=None, min_length=1, max_length=50,
                                      description="only the grids of this community (its code)"),
        _: Client = Depends(anyone),
    ) -> dict[str, Any]:
        """The street's grids as a GeoJSON FeatureCollection (WGS84), each with its code, name, level, parent,
        community and households; ordered by code."""
        rows = await runtime.pool.fetch(
            """SELECT code, name, level, parent, community, households, geometry FROM grids
               WHERE ($1::text IS NULL OR level = $1) AND ($2::text IS NULL OR community = $2) ORDER BY code""",
            level, community)
        if not rows and not await runtime.pool.fetchval("SELECT EXISTS (SELECT 1 FROM grids)"):
            raise HTTPException(503, "no street is loaded yet: routing loads it at start (python -m services.routing load-street)")
        return {"type": "FeatureCollection", "features": [
            {"type": "Feature", "id": r["code"], "geometry": json.loads(r["geometry"]),
             "properties": {k: r[k] for k in ("code", "name", "level", "parent", "community", "households")}}
            for r in rows]}

    @router.get("/public/grids", response_model=GridCollection, tags=["public"],
                responses={503: {"description": "no street loaded yet"}})
    async def public_grids() -> dict[str, Any]:
        """The street's unit grids for anyone (the resident page's public map, /my/): each polygon with its code and
        name only — the street's geography, nothing about the people in it (no households)."""
        rows = await runtime.pool.fetch(
            "SELECT code, name, level, parent, community, geometry FROM grids WHERE level = 'unit' ORDER BY code")
        if not rows:
            raise HTTPException(503, "no street is loaded yet (街道数据尚未加载)")
        return {"type": "FeatureCollection", "features": [
            {"type": "Feature", "id": r["code"], "geometry": json.loads(r["geometry"]),
             "properties": {"code": r["code"], "name": r["name"], "level": r["level"], "parent": r["parent"],
                            "community": r["community"], "households": None}}
            for r in rows]}

    return router

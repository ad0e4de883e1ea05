"""GET /api/v1/public/cases: the street's recent cases on a map, for anyone (the resident page before sign-in).

What FixMyStreet shows every visitor, and no more: the category, a plain state, when, and the place rounded to the
street level (3 decimals, about 100 m) — never a description, address, photo, reporter or owner's staff, which may
name or picture a person. Held reports (not yet a case), rejected and merged ones are left out: they were never, or
are no longer, cases of their own.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from services.supervision.domain.policy import StreetPolicy
from shared.clock import Clock, to_street_time
from shared.runtime import ServiceRuntime

# A resident's plain words for where a case stands (the public needs no more than these three).
PUBLIC_STATES = {"closed": "已办结", "resolved": "已处置，待核查", "explained": "已作解释说明，待核查"}
OPEN_LABEL = "处理中"
ROUNDED = 3  # decimals of a degree: about 100 m, the street-level place and no door


class PublicPoint(BaseModel):
    lon: float
    lat: float


class PublicCase(BaseModel):
    case_no: str
    category: str = Field(description="the category's name")
    status: str = Field(description="open, resolved or closed")
    status_label: str
    reported_at: datetime
    location: PublicPoint = Field(description="rounded to 3 decimals (about 100 m)")


class PublicCases(BaseModel):
    cases: list[PublicCase]


def public_status(state: str) -> tuple[str, str]:
    if state == "closed":
        return "closed", PUBLIC_STATES["closed"]
    if state in ("resolved", "explained"):
        return "resolved", PUBLIC_STATES[state]
    return "open", OPEN_LABEL


def build_public_router(runtime: ServiceRuntime, policy: StreetPolicy, clock: Clock) -> APIRouter:
    """`clock`: the service's; "the last N days" count back from its moment."""
    router = APIRouter(prefix="/api/v1/public", tags=["public"])

    @router.get("/cases", response_model=PublicCases)
    async def recent_cases(days: int = Query(30, ge=1, le=90, description="cases reported in the last N days"),
                           limit: int = Query(200, ge=1, le=500)) -> Any:
        """街道近期案件: recent cases on the map with their state; no personal data (no description, address,
        photo or person), the place rounded to about 100 m. No credential needed."""
        rows = await runtime.pool.fetch(
            """SELECT case_no, category, state, reported_at, location FROM cases
                WHERE reported_at > $1 AND state IS NOT NULL AND state NOT IN ('reported', 'rejected', 'merged')
                  AND jsonb_typeof(location) = 'object' AND case_no IS NOT NULL
                ORDER BY reported_at DESC LIMIT $2""",
            clock.now() - timedelta(days=days), limit)
        cases = []
        for row in rows:
            point = _point(row["location"])
            if point is None:
                continue
            status, label = public_status(row["state"])
            cases.append(PublicCase(case_no=row["case_no"], category=policy.category_label(row["category"] or ""),
                                    status=status, status_label=label, reported_at=to_street_time(row["reported_at"]),
                                    location=point))
        return PublicCases(cases=cases)

    return router


def _point(location: Any) -> PublicPoint | None:
    data = json.loads(location) if isinstance(location, str) else location
    try:
        return PublicPoint(lon=round(float(data["lon"]), ROUNDED), lat=round(float(data["lat"]), ROUNDED))
    except (KeyError, TypeError, ValueError):
        return None

"""GET /api/v1/cases/search: the work screen's search by address or description words, case numbers, state and
extension request.

Phones are not here: only notify holds them (POST /api/v1/contacts/lookup gives the case numbers, which the
work screen passes here as case_no). Included before the /cases/{case_no} route, which would take "search".
"""
from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from services.supervision.adapters.search import search_cases
from services.supervision.domain.policy import StreetPolicy
from services.supervision.entrypoints.http import CaseState, CaseView
from shared.auth import Client, require
from shared.clock import Clock
from shared.contracts.common import Location
from shared.http import refusal
from shared.runtime import ServiceRuntime


class FoundCase(CaseView):
    """A case as the search finds it: the read model, with the place and photos its events gave."""

    address: str | None = Field(description="the latest address the case's events name (masked as published)")
    location: Location | None
    media: list[str] = Field(description="the photos the report came with (URLs)")


class SearchAnswer(BaseModel):
    count: int
    cases: list[FoundCase]


def build_search_router(runtime: ServiceRuntime, policy: StreetPolicy, clock: Clock) -> APIRouter:
    """The search route over supervision's read model and case events; `clock`: the service's (what is overdue)."""
    router = APIRouter(prefix="/api/v1", tags=["supervision"])
    zone = policy.calendar.zone

    @router.get("/cases/search", responses={200: {"model": SearchAnswer},
                                            422: refusal("no filter given, or a filter does not fit")})
    async def search(
        q: str | None = Query(default=None, min_length=1, max_length=100,
                              description="words found in the address or the description (地址、描述)"),
        case_no: list[str] | None = Query(default=None, max_length=200,
                                          description="any of these case numbers (repeat the parameter)"),
        state: CaseState | None = None,
        extension_state: Literal["pending", "approved", "denied"] | None = Query(
            default=None, description="the owner's extension request: pending (awaiting a decision), approved, denied"),
        limit: int = Query(default=100, ge=1, le=500),
        _: Client = Depends(require("operator", "admin")),
    ) -> dict[str, Any]:
        """查询案件: by words of the address or description, by case numbers, by state, by extension request (every
        given filter holds)."""
        words = q.strip() if q else None
        numbers = [n.strip() for n in case_no or [] if n.strip()]
        if any(len(n) > 50 for n in numbers):
            raise HTTPException(422, "case_no: a case number has at most 50 characters")
        if not words and case_no is None and state is None and extension_state is None:
            raise HTTPException(422, "give q (地址或描述中的词), case_no, state or extension_state (请至少给出一个查询条件)")
        found = await search_cases(runtime.pool, zone, text=words, case_nos=numbers if case_no is not None else None,
                                   state=state, limit=limit, at=clock.now(), extension_state=extension_state)
        return {"count": len(found), "cases": found}

    return router

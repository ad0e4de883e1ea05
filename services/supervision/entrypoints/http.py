"""Supervision's HTTP API: thin routers over the read model."""
from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query

from services.supervision.adapters import views
from services.supervision.domain.policy import StreetPolicy
from services.supervision.domain.states import STATES
from shared.clock import now
from shared.runtime import ServiceRuntime

CaseState = Literal[STATES]  # type: ignore[valid-type]  # 422 with the allowed values for anything else

# TODO(auth): every route here needs an operator/admin credential (owners: only their own cases),
# per DESIGN.md "HTTP surfaces"; credentials are a later issue.


def build_router(runtime: ServiceRuntime, policy: StreetPolicy) -> APIRouter:
    """The /api/v1 routes of supervision, reading through the runtime's pool."""
    router = APIRouter(prefix="/api/v1", tags=["supervision"])
    zone = policy.calendar.zone

    @router.get("/cases/{case_no}")
    async def get_case(case_no: str = Path(min_length=1, max_length=50)) -> dict[str, Any]:
        """One case: its read model, its handling clock and its event history."""
        case = await views.case_detail(runtime.pool, case_no, zone)
        if case is None:
            raise HTTPException(404, f"no case numbered {case_no!r} is known to supervision "
                                     "(not reported, or its events have not arrived yet)")
        return case

    @router.get("/cases")
    async def list_cases(
        state: CaseState | None = None,
        owner: str | None = Query(default=None, min_length=1, max_length=50),
        limit: int = Query(default=50, ge=1, le=500),
    ) -> dict[str, Any]:
        """Cases, most recently changed first, filtered by state and/or owner."""
        cases = await views.list_cases(runtime.pool, zone, state=state, owner=owner, limit=limit)
        return {"count": len(cases), "cases": cases}

    @router.get("/stats/summary")
    async def stats_summary() -> dict[str, Any]:
        """Counts by state, overdue now, and the on-time share of finished cases."""
        return {"as_of": now().astimezone(zone), **await views.summary(runtime.pool)}

    return router

"""The record of dispatches: one row per case, so no event can dispatch a case twice."""
from __future__ import annotations

import asyncpg

from services.routing.domain.dispatching import DispatchPlan


async def is_dispatched(conn: asyncpg.Connection, case_id: str) -> bool:
    """Whether this case has been dispatched already."""
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM dispatches WHERE case_id = $1)", case_id))


async def record_dispatch(
    conn: asyncpg.Connection,
    *,
    case_id: str,
    case_no: str,
    category: str,
    unit_grid: str,
    plan: DispatchPlan,
    accepted_event_id: str,
    event_id: str,
) -> bool:
    """Insert the dispatch; False if the case already had one (a concurrent or repeated acceptance)."""
    a = plan.assignment
    inserted = await conn.fetchval(
        """
        INSERT INTO dispatches(case_id, case_no, owner, owner_name, category, unit_grid, priority, limit_value,
                               limit_unit, dispatched_at, due_at, manual_reason, accepted_event_id, event_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
        ON CONFLICT (case_id) DO NOTHING
        RETURNING 1
        """,
        case_id, case_no, a.owner.code, a.owner.name, category, unit_grid, a.priority, a.limit.value,
        a.limit.unit, plan.dispatched_at, plan.due_at, a.manual_reason, accepted_event_id, event_id,
    )
    return inserted is not None

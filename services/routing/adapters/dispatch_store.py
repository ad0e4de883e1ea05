"""The history of dispatches: one row per dispatch, one dispatch per cause (event or command)."""
from __future__ import annotations

import asyncpg

from services.routing.domain.dispatching import DispatchPlan
from services.routing.domain.model import Limit
from services.routing.domain.redispatching import Terms


async def is_dispatched(conn: asyncpg.Connection, case_id: str) -> bool:
    """Whether this case has been dispatched already."""
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM dispatches WHERE case_id = $1)", case_id))


async def last_terms(conn: asyncpg.Connection, case_id: str) -> Terms | None:
    """The limit and priority of the case's latest dispatch, or None if it has none."""
    row = await conn.fetchrow(
        "SELECT limit_value, limit_unit, priority FROM dispatches WHERE case_id = $1 "
        "ORDER BY dispatched_at DESC LIMIT 1",
        case_id,
    )
    return Terms(Limit(row["limit_value"], row["limit_unit"]), row["priority"]) if row else None


async def record_dispatch(
    conn: asyncpg.Connection,
    *,
    case_id: str,
    case_no: str,
    category: str,
    unit_grid: str,
    plan: DispatchPlan,
    cause_id: str,
    event_id: str,
    occasion: str = "first",
    note: str | None = None,
    by: str = "system",
    previous_owner: str | None = None,
) -> bool:
    """Insert the dispatch; False if its cause already dispatched, or (first) the case already had one."""
    a = plan.assignment
    inserted = await conn.fetchval(
        """
        INSERT INTO dispatches(case_id, case_no, owner, owner_name, category, unit_grid, priority, limit_value,
                               limit_unit, dispatched_at, due_at, manual_reason, cause_id, event_id,
                               occasion, note, by_actor, previous_owner)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
        ON CONFLICT DO NOTHING
        RETURNING 1
        """,
        case_id, case_no, a.owner.code, a.owner.name or None, category, unit_grid, a.priority, a.limit.value,
        a.limit.unit, plan.dispatched_at, plan.due_at, a.manual_reason, cause_id, event_id,
        occasion, note, by, previous_owner,
    )
    return inserted is not None

"""The history of dispatches: one row per dispatch, one dispatch per cause (event or command)."""
from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from services.routing.domain.dispatching import DispatchPlan
from services.routing.domain.model import Limit
from services.routing.domain.redispatching import Terms


async def dispatched_among(conn: asyncpg.Connection, case_ids: list[str]) -> set[str]:
    """Those of these cases that have been dispatched already (one statement for a batch)."""
    rows = await conn.fetch("SELECT DISTINCT case_id FROM dispatches WHERE case_id = ANY($1::text[])", case_ids)
    return {r["case_id"] for r in rows}


async def last_terms(conn: asyncpg.Connection, case_id: str) -> Terms | None:
    """The limit and priority of the case's latest dispatch, or None if it has none."""
    row = await conn.fetchrow(
        "SELECT limit_value, limit_unit, priority FROM dispatches WHERE case_id = $1 "
        "ORDER BY dispatched_at DESC LIMIT 1",
        case_id,
    )
    return Terms(Limit(row["limit_value"], row["limit_unit"]), row["priority"]) if row else None


@dataclass(frozen=True)
class DispatchRow:
    """One dispatch to record: the plan, its case, its cause (an event or a command) and the case.dispatched."""

    case_id: str
    case_no: str
    category: str
    unit_grid: str
    plan: DispatchPlan
    cause_id: str
    event_id: str
    occasion: str = "first"
    note: str | None = None
    by: str = "system"
    previous_owner: str | None = None


async def record_dispatches(conn: asyncpg.Connection, rows: list[DispatchRow]) -> set[str]:
    """Insert the dispatches in one statement; the causes that dispatched now. A cause that dispatched already,
    or a first dispatch of a case that had one, is left out (ON CONFLICT: dispatches_cause, dispatches_first)."""
    if not rows:
        return set()
    columns = list(zip(*[
        (r.case_id, r.case_no, r.plan.assignment.owner.code, r.plan.assignment.owner.name or None, r.category,
         r.unit_grid, r.plan.assignment.priority, float(r.plan.assignment.limit.value), r.plan.assignment.limit.unit,
         r.plan.dispatched_at, r.plan.due_at, r.plan.assignment.manual_reason, r.cause_id, r.event_id, r.occasion,
         r.note, r.by, r.previous_owner)
        for r in rows
    ]))
    inserted = await conn.fetch(
        """
        INSERT INTO dispatches(case_id, case_no, owner, owner_name, category, unit_grid, priority, limit_value,
                               limit_unit, dispatched_at, due_at, manual_reason, cause_id, event_id,
                               occasion, note, by_actor, previous_owner)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                             $8::float8[], $9::text[], $10::timestamptz[], $11::timestamptz[], $12::text[],
                             $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[])
        ON CONFLICT DO NOTHING
        RETURNING cause_id
        """,
        *[list(column) for column in columns],
    )
    return {r["cause_id"] for r in inserted}

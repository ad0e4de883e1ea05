"""SQL for the case read model and its history (within a unit of work's connection)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from services.supervision.domain.decisions import CaseSnapshot
from services.supervision.domain.read_model import COLUMNS, INCREMENT, without_contacts
from services.supervision.domain.states import Fold
from shared.contracts.envelope import Envelope

_SNAPSHOT = """SELECT case_id, case_no, state, owner, due_at, overdue_at, extension_state = 'pending' AS extension_pending,
                      category, result, explanation, resolved_at, extension_until, unit_grid
               FROM cases"""


async def lock_case_state(conn: asyncpg.Connection, case_id: str) -> str | None:
    """The case's state (None if unknown or not set yet), locking its row for this transaction."""
    return await conn.fetchval("SELECT state FROM cases WHERE case_id = $1 FOR UPDATE", case_id)


async def lock_case(conn: asyncpg.Connection, *, case_id: str | None = None,
                    case_no: str | None = None) -> asyncpg.Record | None:
    """The case by id or by number, its row locked for this transaction (decisions read, then write)."""
    if case_id is not None:
        return await conn.fetchrow(f"{_SNAPSHOT} WHERE case_id = $1 FOR UPDATE", case_id)
    return await conn.fetchrow(
        f"{_SNAPSHOT} WHERE case_no = $1 ORDER BY updated_at DESC LIMIT 1 FOR UPDATE", case_no)


def snapshot(row: asyncpg.Record | None) -> CaseSnapshot | None:
    """What a decision needs from a locked row."""
    if row is None or row["case_no"] is None:
        return None
    return CaseSnapshot(case_id=row["case_id"], case_no=row["case_no"], state=row["state"], owner=row["owner"],
                        due_at=row["due_at"], extension_pending=bool(row["extension_pending"]),
                        unit_grid=row["unit_grid"], went_overdue=row["overdue_at"] is not None)


async def save_case(
    conn: asyncpg.Connection, case_id: str, case_no: str | None, state: str | None,
    columns: dict[str, Any], occurred_at: datetime,
) -> None:
    """Create the case row or update it with the event's state and columns."""
    unknown = set(columns) - set(COLUMNS)
    if unknown:  # the names go into SQL text: only the read model's own
        raise ValueError(f"not read-model columns: {sorted(unknown)}")
    names = list(columns)
    # Counters (INCREMENT) start at 1 on a new row and add one to an existing row.
    values = [1 if columns[n] is INCREMENT else columns[n] for n in names]
    # $1 case_id, $2 case_no, $3 state, $4 occurred_at, then one per column.
    cols = ", ".join(["case_id", "case_no", "state", "last_event_at", *names])
    params = ", ".join(f"${i}" for i in range(1, 5 + len(names)))
    updates = ", ".join(f"{n} = cases.{n} + 1" if columns[n] is INCREMENT else f"{n} = EXCLUDED.{n}" for n in names)
    await conn.execute(
        f"""INSERT INTO cases ({cols}, events_seen) VALUES ({params}, 1)
            ON CONFLICT (case_id) DO UPDATE SET
                case_no = COALESCE(cases.case_no, EXCLUDED.case_no),
                state = EXCLUDED.state,
                last_event_at = GREATEST(cases.last_event_at, EXCLUDED.last_event_at),
                events_seen = cases.events_seen + 1,
                {updates + ", " if updates else ""}updated_at = now()""",
        case_id, case_no, state, occurred_at, *values,
    )


async def append_history(conn: asyncpg.Connection, envelope: Envelope, fold: Fold) -> None:
    """Record the event as received (the resident's phone masked) and what it did."""
    await conn.execute(
        """INSERT INTO case_events (event_id, case_id, type, version, occurred_at, source, data, effect, state_after, note)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (event_id) DO NOTHING""",
        envelope.id, envelope.case_id, envelope.type, envelope.version, envelope.occurred_at,
        envelope.source, without_contacts(envelope.data), fold.effect, fold.state, fold.reason,
    )

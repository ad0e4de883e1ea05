"""SQL for clocks: opening, stopping, and claiming the deadlines that are due."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

HANDLING = "handling"
# Deadlines claimed per transaction; the poller loops until fewer come back.
CLAIM_BATCH = 100


@dataclass(frozen=True)
class DueClock:
    """A running clock with a deadline that has come, locked by this transaction."""

    case_id: str
    case_no: str
    owner: str
    category: str
    due_at: datetime
    warn_at: datetime
    warning_due: bool
    overdue_due: bool


async def open_clock(
    conn: asyncpg.Connection, *, case_id: str, case_no: str, owner: str, category: str,
    limit_value: float, limit_unit: str, started_at: datetime, warn_at: datetime, due_at: datetime, opened_by: str,
) -> None:
    """Start the handling clock; a re-dispatch replaces the previous one, warnings included."""
    await conn.execute(
        """INSERT INTO clocks (case_id, kind, case_no, owner, category, limit_value, limit_unit,
                               started_at, warn_at, due_at, state, opened_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'running', $11)
           ON CONFLICT (case_id, kind) DO UPDATE SET
               case_no = EXCLUDED.case_no, owner = EXCLUDED.owner, category = EXCLUDED.category,
               limit_value = EXCLUDED.limit_value, limit_unit = EXCLUDED.limit_unit,
               started_at = EXCLUDED.started_at, warn_at = EXCLUDED.warn_at, due_at = EXCLUDED.due_at,
               state = 'running', warned_at = NULL, overdue_at = NULL, escalation_level = NULL,
               stopped_at = NULL, stop_reason = NULL, opened_by = EXCLUDED.opened_by, updated_at = now()""",
        case_id, HANDLING, case_no, owner, category, limit_value, limit_unit, started_at, warn_at, due_at, opened_by,
    )


async def stop_clock(conn: asyncpg.Connection, case_id: str, at: datetime, reason: str) -> None:
    """Stop the running handling clock of a case (no-op if none runs)."""
    await conn.execute(
        """UPDATE clocks SET state = 'stopped', stopped_at = $3, stop_reason = $4, updated_at = now()
           WHERE case_id = $1 AND kind = $2 AND state = 'running'""",
        case_id, HANDLING, at, reason,
    )


async def claim_due(conn: asyncpg.Connection, limit: int = CLAIM_BATCH) -> list[DueClock]:
    """Lock running clocks with a deadline come and not fired; rows another instance holds are skipped."""
    rows = await conn.fetch(
        """SELECT case_id, case_no, owner, category, due_at, warn_at,
                  (warned_at IS NULL AND warn_at <= now()) AS warning_due,
                  (overdue_at IS NULL AND due_at <= now()) AS overdue_due
           FROM clocks
           WHERE state = 'running'
             AND ((warned_at IS NULL AND warn_at <= now()) OR (overdue_at IS NULL AND due_at <= now()))
           ORDER BY LEAST(CASE WHEN warned_at IS NULL THEN warn_at END, CASE WHEN overdue_at IS NULL THEN due_at END)
           LIMIT $1
           FOR UPDATE SKIP LOCKED""",
        limit,
    )
    return [DueClock(**dict(r)) for r in rows]


async def mark_warned(conn: asyncpg.Connection, case_id: str) -> None:
    """Record that the 75% reminder went out."""
    await conn.execute(
        "UPDATE clocks SET warned_at = now(), updated_at = now() WHERE case_id = $1 AND kind = $2", case_id, HANDLING
    )


async def mark_overdue(conn: asyncpg.Connection, case_id: str, level: str) -> None:
    """Record that the case went overdue and to which level it was escalated."""
    await conn.execute(
        """UPDATE clocks SET overdue_at = now(), escalation_level = $3, updated_at = now()
           WHERE case_id = $1 AND kind = $2""",
        case_id, HANDLING, level,
    )


async def count_running(conn: asyncpg.Connection) -> tuple[int, int]:
    """(running clocks, of which past their deadline) now."""
    row = await conn.fetchrow(
        "SELECT count(*) AS running, count(*) FILTER (WHERE due_at <= now()) AS overdue FROM clocks WHERE state = 'running'"
    )
    return row["running"], row["overdue"]

"""SQL for clocks: opening, stopping, and claiming the deadlines that are due."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

HANDLING = "handling"
DISPATCH = "dispatch"
SIGN = "sign"    # 签收: dispatch → signed, on the owner
CHECK = "check"  # 核查: resolved/explained → checked, on the command center
# Deadlines claimed per transaction; the poller loops until fewer come back.
CLAIM_BATCH = 100


@dataclass(frozen=True)
class DueClock:
    """A running clock with a deadline that has come, locked by this transaction."""

    case_id: str
    kind: str
    case_no: str
    owner: str
    category: str
    due_at: datetime
    warn_at: datetime
    warning_due: bool
    overdue_due: bool
    escalation_level: str | None = None
    next_escalation_at: datetime | None = None
    escalation_due: bool = False


async def stop_clocks(conn: asyncpg.Connection, case_id: str, at: datetime, reason: str, *kinds: str) -> None:
    """Stop the running (or suspended) clocks of these kinds of a case, in one statement (no-op for a kind that does
    not run; no kinds: nothing to do)."""
    if not kinds:
        return
    await conn.execute(
        """UPDATE clocks SET state = 'stopped', stopped_at = $3, stop_reason = $4, next_escalation_at = NULL,
                             updated_at = now()
           WHERE case_id = $1 AND kind = ANY($2::text[]) AND state IN ('running', 'suspended')""",
        case_id, list(kinds), at, reason,
    )


async def running_clock(conn: asyncpg.Connection, case_id: str, kind: str = HANDLING) -> asyncpg.Record | None:
    """The clock of this kind if it runs or is suspended."""
    return await conn.fetchrow(
        """SELECT case_id, state, limit_unit, started_at, warn_at, due_at, warned_at, overdue_at, due_left_s, warn_left_s
           FROM clocks WHERE case_id = $1 AND kind = $2 AND state IN ('running', 'suspended')""",
        case_id, kind,
    )


async def suspend_clock(conn: asyncpg.Connection, case_id: str, at: datetime, due_left: float,
                        warn_left: float | None) -> None:
    """挂起: the clock stops, keeping the time that was left."""
    await conn.execute(
        """UPDATE clocks SET state = 'suspended', suspended_at = $2, due_left_s = $3, warn_left_s = $4, updated_at = now()
           WHERE case_id = $1 AND kind = $5 AND state = 'running'""",
        case_id, at, due_left, warn_left, HANDLING,
    )


async def resume_clock(conn: asyncpg.Connection, case_id: str, due_at: datetime, warn_at: datetime | None) -> None:
    """The clock runs again towards its new deadline (the reminder kept if it was already sent)."""
    await conn.execute(
        """UPDATE clocks SET state = 'running', due_at = $2, warn_at = COALESCE($3, warn_at), suspended_at = NULL,
                             due_left_s = NULL, warn_left_s = NULL, updated_at = now()
           WHERE case_id = $1 AND kind = $4 AND state = 'suspended'""",
        case_id, due_at, warn_at, HANDLING,
    )


async def move_deadline(conn: asyncpg.Connection, case_id: str, due_at: datetime, warn_at: datetime,
                        calendar_assumed: bool = False, *, at: datetime) -> None:
    """延期: a new deadline; an overdue already fired may fire again against it (the ladder starts over) if the new
    deadline is after `at` (the handed clock's now), a reminder already sent is not repeated."""
    await conn.execute(
        """UPDATE clocks SET due_at = $2, warn_at = CASE WHEN warned_at IS NULL THEN $3 ELSE warn_at END,
                             overdue_at = CASE WHEN $2::timestamptz > $6::timestamptz THEN NULL ELSE overdue_at END,
                             next_escalation_at = CASE WHEN $2::timestamptz > $6::timestamptz THEN NULL ELSE next_escalation_at END,
                             escalation_level = CASE WHEN $2::timestamptz > $6::timestamptz THEN NULL ELSE escalation_level END,
                             calendar_assumed = $5, updated_at = now()
           WHERE case_id = $1 AND kind = $4 AND state IN ('running', 'suspended')""",
        case_id, due_at, warn_at, HANDLING, calendar_assumed, at,
    )


async def claim_due(conn: asyncpg.Connection, at: datetime, limit: int = CLAIM_BATCH) -> list[DueClock]:
    """Lock running clocks with a deadline come by `at` (the poller's handed clock, which tests move: PostgreSQL's
    now() is not read) and not fired (reminder, overdue, or the next rung of the ladder), oldest first; rows another
    instance holds, and faulted ones, are skipped."""
    rows = await conn.fetch(
        """SELECT case_id, kind, case_no, owner, category, due_at, warn_at, escalation_level, next_escalation_at,
                  (warned_at IS NULL AND warn_at <= $2) AS warning_due,
                  (overdue_at IS NULL AND due_at <= $2) AS overdue_due,
                  (overdue_at IS NOT NULL AND next_escalation_at <= $2) AS escalation_due
           FROM clocks
           WHERE state = 'running' AND faulted_at IS NULL AND fire_at IS NOT NULL AND fire_at <= $2
           ORDER BY fire_at
           LIMIT $1
           FOR UPDATE SKIP LOCKED""",
        limit, at,
    )
    return [DueClock(**dict(r)) for r in rows]


async def next_fire_at(conn: asyncpg.Connection | asyncpg.Pool) -> datetime | None:
    """When the next running clock needs firing (None: none will), from the first entry of the index."""
    return await conn.fetchval(
        """SELECT fire_at FROM clocks WHERE state = 'running' AND faulted_at IS NULL AND fire_at IS NOT NULL
           ORDER BY fire_at LIMIT 1"""
    )


async def mark_warned(conn: asyncpg.Connection, case_id: str, kind: str = HANDLING, *, at: datetime) -> None:
    """Record that the 75% reminder went out at `at`."""
    await conn.execute(
        "UPDATE clocks SET warned_at = $3, updated_at = now() WHERE case_id = $1 AND kind = $2", case_id, kind, at
    )


async def mark_overdue(conn: asyncpg.Connection, case_id: str, level: str, kind: str = HANDLING,
                       next_escalation_at: datetime | None = None, *, at: datetime) -> None:
    """Record that the case went overdue at `at`, to which level it was escalated, and when the next level is due."""
    await conn.execute(
        """UPDATE clocks SET overdue_at = $5, escalation_level = $3, next_escalation_at = $4, updated_at = now()
           WHERE case_id = $1 AND kind = $2""",
        case_id, kind, level, next_escalation_at, at,
    )


async def mark_escalated(conn: asyncpg.Connection, case_id: str, kind: str, level: str,
                         next_escalation_at: datetime | None) -> None:
    """Record one more rung of the ladder (next_escalation_at None: the top was reached)."""
    await conn.execute(
        """UPDATE clocks SET escalation_level = $3, next_escalation_at = $4, updated_at = now()
           WHERE case_id = $1 AND kind = $2""",
        case_id, kind, level, next_escalation_at,
    )


async def mark_faulted(conn: asyncpg.Connection, case_id: str, kind: str, reason: str) -> None:
    """This clock cannot be fired: keep the reason, and let later polls skip it."""
    await conn.execute(
        "UPDATE clocks SET fault = $3, faulted_at = now(), updated_at = now() WHERE case_id = $1 AND kind = $2",
        case_id, kind, reason[:2000],
    )


async def count_faulted(conn: asyncpg.Connection) -> int:
    """Running clocks the poller has set aside as faulted."""
    return await conn.fetchval("SELECT count(*) FROM clocks WHERE faulted_at IS NOT NULL AND state = 'running'")


async def count_running(conn: asyncpg.Connection, at: datetime) -> tuple[int, int]:
    """(running clocks, of which past their deadline) at `at`."""
    row = await conn.fetchrow(
        "SELECT count(*) AS running, count(*) FILTER (WHERE due_at <= $1) AS overdue FROM clocks WHERE state = 'running'",
        at,
    )
    return row["running"], row["overdue"]

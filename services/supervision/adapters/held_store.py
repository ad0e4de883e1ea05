"""SQL for owners' updates held until the case log catches up (migrations/013_held_updates.sql).

Lock order, the same in every transaction that touches a held update, so none can deadlock with another: the
case rows (the fold's lock_cases, sorted), then the cases' advisory locks (sorted), then the held rows. The
advisory lock covers the one moment a row lock cannot: an update for a case with no row yet. Its holder and the
fold that creates the row and releases the case's held updates then take turns, so an update is never held just
after the release that should have taken it.
"""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

import asyncpg

# One namespace of pg_advisory_xact_lock(int, int) for "a case's held updates" (the first key).
_LOCK_SPACE = 17017


async def lock_cases(conn: asyncpg.Connection, case_ids: Sequence[str]) -> None:
    """The cases' advisory locks for this transaction, in one order."""
    if case_ids:
        await conn.execute(
            """SELECT pg_advisory_xact_lock($1, hashtext(id)) FROM (SELECT DISTINCT unnest($2::text[]) AS id) ids
               ORDER BY hashtext(id)""", _LOCK_SPACE, list(case_ids))


async def hold(conn: asyncpg.Connection, *, case_id: str, update_id: str, owner: str, envelope: bytes,
               at: datetime) -> None:
    await conn.execute(
        """INSERT INTO held_updates (case_id, update_id, owner, envelope, held_at) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (update_id) DO NOTHING""", case_id, update_id, owner, envelope, at)


async def held_of(conn: asyncpg.Connection, owner: str) -> int:
    """How many of this owner's updates are held now. The updates of cases on different partitions are decided in
    concurrent transactions, which may each see one under the bound: it is exceeded by at most the partitions being
    decided at that moment — enough for a bound on storage, and no lock on the owner that the folds' case locks could
    deadlock with."""
    return await conn.fetchval("SELECT count(*) FROM held_updates WHERE owner = $1", owner)


async def take_for_cases(conn: asyncpg.Connection, case_ids: Sequence[str]) -> list[asyncpg.Record]:
    """The held updates of these cases, removed, in arrival order."""
    rows = await conn.fetch(
        "DELETE FROM held_updates WHERE case_id = ANY($1::text[]) RETURNING seq, case_id, update_id, envelope, held_at",
        list(case_ids))
    return sorted(rows, key=lambda r: r["seq"])


async def expired_cases(conn: asyncpg.Connection, before: datetime, limit: int) -> list[str]:
    """Cases with an update held since before `before` (oldest first, at most `limit`)."""
    rows = await conn.fetch(
        """SELECT case_id FROM (SELECT case_id, min(held_at) AS since FROM held_updates WHERE held_at < $1
                                GROUP BY case_id) h ORDER BY since LIMIT $2""", before, limit)
    return [r["case_id"] for r in rows]


async def take_expired(conn: asyncpg.Connection, case_ids: Sequence[str], before: datetime) -> list[asyncpg.Record]:
    """The updates of these cases held since before `before`, removed, in arrival order."""
    rows = await conn.fetch(
        """DELETE FROM held_updates WHERE case_id = ANY($1::text[]) AND held_at < $2
           RETURNING seq, case_id, update_id, envelope""", list(case_ids), before)
    return sorted(rows, key=lambda r: r["seq"])


async def count(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT count(*) FROM held_updates")

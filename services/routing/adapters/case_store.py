"""Routing's view of the cases it dispatched (routed_cases): read with a lock, updated in place."""
from __future__ import annotations

import asyncpg

from shared.contracts.cases import CaseAccepted
from services.routing.domain.redispatching import OPEN, RoutedCase

_COLUMNS = "case_id, case_no, category, unit_grid, description, location, address, media, holder, status"


def _case(row: asyncpg.Record | None) -> RoutedCase | None:
    return RoutedCase(**dict(row)) if row else None


async def get(conn: asyncpg.Connection, case_id: str, *, lock: bool = False) -> RoutedCase | None:
    """The case by id; with lock, its row is held until the transaction ends."""
    sql = f"SELECT {_COLUMNS} FROM routed_cases WHERE case_id = $1" + (" FOR UPDATE" if lock else "")
    return _case(await conn.fetchrow(sql, case_id))


async def get_by_no(conn: asyncpg.Connection, case_no: str, *, lock: bool = False) -> RoutedCase | None:
    """The case by its number; with lock, its row is held until the transaction ends."""
    sql = f"SELECT {_COLUMNS} FROM routed_cases WHERE case_no = $1" + (" FOR UPDATE" if lock else "")
    return _case(await conn.fetchrow(sql, case_no))


async def case_id_of(conn: asyncpg.Connection, case_no: str) -> str | None:
    """Which case carries this number, if routing knows one."""
    return await conn.fetchval("SELECT case_id FROM routed_cases WHERE case_no = $1", case_no)


async def add(conn: asyncpg.Connection, case_id: str, accepted: CaseAccepted, holder: str) -> None:
    """Remember an accepted case at its first dispatch, held by its first owner."""
    await conn.execute(
        """
        INSERT INTO routed_cases(case_id, case_no, category, unit_grid, description, location, address, media,
                                 holder, status)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        ON CONFLICT (case_id) DO NOTHING
        """,
        case_id, accepted.case_no, accepted.category, accepted.unit_grid, accepted.description,
        accepted.location.model_dump() if accepted.location else None, accepted.address, list(accepted.media),
        holder, OPEN,
    )


async def set_holder(conn: asyncpg.Connection, case_id: str, holder: str | None, status: str) -> None:
    """Who holds the case now (None: nobody) and its status."""
    await conn.execute(
        "UPDATE routed_cases SET holder = $2, status = $3, updated_at = now() WHERE case_id = $1",
        case_id, holder, status,
    )

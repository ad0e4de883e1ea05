"""Routing's view of the cases it dispatched (routed_cases): read with a lock, updated in place."""
from __future__ import annotations

import json

import asyncpg

from services.routing.domain.redispatching import RoutedCase

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


async def case_ids_of(conn: asyncpg.Connection, case_nos: list[str]) -> dict[str, str]:
    """Which case carries each of these numbers, for the numbers routing knows (one statement for a batch)."""
    rows = await conn.fetch("SELECT case_no, case_id FROM routed_cases WHERE case_no = ANY($1::text[])", case_nos)
    return {r["case_no"]: r["case_id"] for r in rows}


async def add_all(conn: asyncpg.Connection, cases: list[RoutedCase]) -> None:
    """Remember accepted cases at their first dispatch, held by their first owner (one statement)."""
    if not cases:
        return
    await conn.execute(
        """
        INSERT INTO routed_cases(case_id, case_no, category, unit_grid, description, location, address, media,
                                 holder, status)
        SELECT c.case_id, c.case_no, c.category, c.unit_grid, c.description, c.location::jsonb, c.address,
               c.media::jsonb, c.holder, c.status
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                    $9::text[], $10::text[])
             AS c(case_id, case_no, category, unit_grid, description, location, address, media, holder, status)
        ON CONFLICT (case_id) DO NOTHING
        """,
        *[list(column) for column in zip(*[
            (c.case_id, c.case_no, c.category, c.unit_grid, c.description,
             json.dumps(c.location, ensure_ascii=False) if c.location is not None else None, c.address,
             json.dumps(list(c.media), ensure_ascii=False), c.holder, c.status)
            for c in cases])],
    )


async def set_holder(conn: asyncpg.Connection, case_id: str, holder: str | None, status: str) -> None:
    """Who holds the case now (None: nobody) and its status."""
    await conn.execute(
        "UPDATE routed_cases SET holder = $2, status = $3, updated_at = now() WHERE case_id = $1",
        case_id, holder, status,
    )

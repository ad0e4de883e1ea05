"""SQL of the work screen's search: cases by words of their address or description, by numbers, by state.

The address is not a read-model column: it is taken from the case's own events (reported, accepted,
located: the latest that names one), with the point and the photos the report came with.
"""
from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

import asyncpg

from services.supervision.adapters.views import CASE_COLUMNS, _plain
from services.supervision.domain.overdue import overdue_sql

_PLACE_EVENTS = ["case.reported", "case.accepted", "case.located"]


def like_pattern(words: str) -> str:
    """`words` as an ILIKE pattern matching them anywhere, with %, _ and \\ taken literally."""
    escaped = words.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search_cases(pool: asyncpg.Pool, zone: tzinfo, *, text: str | None, case_nos: list[str] | None,
                       state: str | None, limit: int, at: datetime,
                       extension_state: str | None = None) -> list[dict[str, Any]]:
    """Cases matching every given filter, most recently changed first, each with its address, point and photos, and
    whether it is overdue at `at` (the service's clock, as every other view: not the database's)."""
    columns = ", ".join(f"c.{name.strip()}" for name in CASE_COLUMNS.split(","))
    rows = await pool.fetch(
        f"""SELECT {columns}, {overdue_sql("$7::timestamptz", "c")} AS overdue, place.address, place.location, reported.media
            FROM cases c
            LEFT JOIN LATERAL (
                SELECT e.data->>'address' AS address, e.data->'location' AS location FROM case_events e
                WHERE e.case_id = c.case_id AND e.type = ANY($5::text[])
                  AND (e.data->>'address' IS NOT NULL OR jsonb_typeof(e.data->'location') = 'object')
                ORDER BY e.seq DESC LIMIT 1) place ON true
            LEFT JOIN LATERAL (
                SELECT e.data->'media' AS media FROM case_events e
                WHERE e.case_id = c.case_id AND e.type = 'case.reported' ORDER BY e.seq LIMIT 1) reported ON true
            WHERE ($1::text IS NULL OR c.description ILIKE $1 OR EXISTS (
                      SELECT 1 FROM case_events e WHERE e.case_id = c.case_id AND e.type = ANY($5::text[])
                        AND e.data->>'address' ILIKE $1))
              AND ($2::text[] IS NULL OR c.case_no = ANY($2))
              AND ($3::text IS NULL OR c.state = $3)
              AND ($6::text IS NULL OR c.extension_state = $6)
            ORDER BY c.updated_at DESC LIMIT $4""",
        like_pattern(text) if text else None, case_nos, state, limit, _PLACE_EVENTS, extension_state, at,
    )
    found = []
    for row in rows:
        case = _plain(row, zone)
        case["media"] = case["media"] if isinstance(case["media"], list) else []
        found.append(case)
    return found

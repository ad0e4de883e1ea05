"""SQL for intake's own tables."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from shared.contracts.cases import FINAL_STATES

_RECEIPT = "case_id, case_no, state, unit_grid, category, hold_reason"
_CASE = f"{_RECEIPT}, lon, lat, address, description, media"


@dataclass(frozen=True)
class StoredCase:
    """What a reporter or an operator is told about a case intake holds."""

    case_id: str
    case_no: str
    state: str
    unit_grid: str | None
    category: str | None
    hold_reason: str | None


@dataclass(frozen=True)
class CaseRow:
    """A case as intake keeps it, read for an operator's action."""

    case_id: str
    case_no: str
    state: str
    unit_grid: str | None
    category: str | None
    hold_reason: str | None
    lon: float | None
    lat: float | None
    address: str | None
    description: str
    media: list[str]




async def lock_cases(conn: asyncpg.Connection, *case_nos: str) -> dict[str, CaseRow]:
    """These cases by number, each row locked (FOR UPDATE) until the transaction ends; missing ones are absent.

    Rows are locked in case-number order, so two operators acting on the same pair of cases wait
    for each other instead of deadlocking.
    """
    rows = await conn.fetch(
        f"SELECT {_CASE} FROM reports WHERE case_no = ANY($1::text[]) ORDER BY case_no FOR UPDATE",
        list(case_nos),
    )
    return {row["case_no"]: CaseRow(**{**dict(row), "case_id": str(row["case_id"])}) for row in rows}


async def update_case(conn: asyncpg.Connection, case_id: str, values: dict) -> None:
    """Set these columns of one case."""
    assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(values, start=2))
    await conn.execute(f"UPDATE reports SET {assignments} WHERE case_id = $1", uuid.UUID(case_id), *values.values())


def _stored(row: asyncpg.Record) -> StoredCase:
    return StoredCase(str(row["case_id"]), row["case_no"], row["state"], row["unit_grid"], row["category"],
                      row["hold_reason"])




async def residents_case(conn: asyncpg.Connection | asyncpg.Pool, case_no: str, *, resident: str,
                         actor: str) -> bool:
    """Whether this resident follows the case on /my/: it was made from their credential on the page, or it was
    reported with the phone or e-mail they proved (its resident_keys), or it is the case a report of theirs was
    merged into (they follow it: notify tells them its replies)."""
    return bool(await conn.fetchval(
        """SELECT EXISTS (
               SELECT 1 FROM reports r
                WHERE r.case_no = $1 AND r.state <> 'reported'
                  AND (r.client = $3 OR $2 = ANY(r.resident_keys)
                       OR EXISTS (SELECT 1 FROM reports d WHERE d.merged_into = r.case_id
                                     AND (d.client = $3 OR $2 = ANY(d.resident_keys)))))""",
        case_no, resident, actor))


# The anonymous Open311 list, read from an index in its own order (intake 009: reports_public_by_received, and
# reports_public_by_category for a service_code filter; both partial, WHERE state <> 'reported'), so a page costs its
# rows, not the table: tests/security/test_open311_list_index.py EXPLAINs this very text. The merged case's number is
# a subquery on the primary key, asked only for the rows of the page (a join could read the whole table).
PUBLIC_REQUESTS = """
    SELECT r.case_no, r.state, r.category, r.description, r.address, r.lat, r.lon, r.media, r.received_at,
           r.acted_at, r.reject_reason, r.updated_at, r.public_note,
           (SELECT m.case_no FROM reports m WHERE m.case_id = r.merged_into) AS into_case_no
      FROM reports r
     WHERE r.state <> 'reported'
       AND ($1::text[] IS NULL OR r.case_no = ANY($1)) AND ($2::text[] IS NULL OR r.category = ANY($2))
       AND ($3::timestamptz IS NULL OR r.received_at >= $3) AND ($4::timestamptz IS NULL OR r.received_at < $4)
       AND ($5::boolean IS NULL OR (r.state = ANY($7::text[])) = $5)
     ORDER BY r.received_at DESC, r.case_no DESC LIMIT $6 OFFSET $8"""


def public_requests_args(*, case_nos: list[str] | None, categories: list[str] | None, start: datetime | None,
                         end: datetime | None, closed: bool | None, limit: int, offset: int = 0) -> tuple:
    """PUBLIC_REQUESTS' parameters, in its order."""
    return (case_nos, categories, start, end, closed, limit, list(FINAL_STATES), offset)


async def public_requests(conn: asyncpg.Connection | asyncpg.Pool, *, case_nos: list[str] | None,
                          categories: list[str] | None, start: datetime | None, end: datetime | None,
                          closed: bool | None, limit: int, offset: int = 0) -> list[dict]:
    """Cases for Open311 readers, newest first (the row holds no contact: that is notify's). Only reports the
    command center decided on: a held one is not yet vetted (its text may be anything a sender typed), so the public
    does not read it. A rejected one is read closed, with the reason (open311.request_view keeps its text back);
    a merged one names the case it follows."""
    rows = await conn.fetch(PUBLIC_REQUESTS, *public_requests_args(
        case_nos=case_nos, categories=categories, start=start, end=end, closed=closed, limit=limit, offset=offset))
    return [dict(r) for r in rows]







async def case_updates(conn: asyncpg.Connection | asyncpg.Pool, *, case_nos: list[str] | None, start: datetime | None,
                       end: datetime | None, limit: int, offset: int = 0) -> list[dict]:
    """Public steps in the window, newest first (index case_updates_by_time, read backwards): the first page is the
    latest (see the Open311 entrypoint, which answers each page in the order its steps happened)."""
    rows = await conn.fetch(
        """SELECT seq, update_id, case_no, status, external_status_code, description, occurred_at, media_url
             FROM case_updates
            WHERE ($1::text[] IS NULL OR case_no = ANY($1)) AND ($2::timestamptz IS NULL OR occurred_at >= $2)
              AND ($3::timestamptz IS NULL OR occurred_at < $3)
            ORDER BY occurred_at DESC, seq DESC LIMIT $4 OFFSET $5""",
        case_nos, start, end, limit, offset)
    return [dict(r) for r in rows]

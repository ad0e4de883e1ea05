"""SQL for intake's own tables."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

import asyncpg


@dataclass(frozen=True)
class StoredCase:
    """What a reporter is told about a case intake holds."""

    case_id: str
    case_no: str
    state: str
    unit_grid: str | None
    hold_reason: str | None


@dataclass(frozen=True)
class ApiClient:
    """An authenticated caller of the HTTP API."""

    id: int
    name: str
    role: str
    worker_id: str | None
    device_id: str | None
    owner_code: str | None


def token_hash(token: str) -> str:
    """The stored form of a bearer token."""
    return hashlib.sha256(token.encode()).hexdigest()


async def find_by_source(conn: asyncpg.Connection, source: str, external_id: str) -> StoredCase | None:
    """The case already made from this (source, external_id), if any."""
    row = await conn.fetchrow(
        "SELECT case_id, case_no, state, unit_grid, hold_reason FROM reports WHERE source = $1 AND external_id = $2",
        source,
        external_id,
    )
    return _stored(row) if row else None


async def next_case_no_sequence(conn: asyncpg.Connection, day: date) -> int:
    """The next number of the day; the row lock serialises concurrent reports of that day."""
    return await conn.fetchval(
        """INSERT INTO case_numbers(day, last) VALUES ($1, 1)
           ON CONFLICT (day) DO UPDATE SET last = case_numbers.last + 1 RETURNING last""",
        day,
    )


async def insert_report(conn: asyncpg.Connection, values: dict) -> None:
    """Store a new case as reported (or accepted)."""
    columns = ", ".join(values)
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    await conn.execute(f"INSERT INTO reports ({columns}) VALUES ({placeholders})", *values.values())


async def client_by_token(conn: asyncpg.Connection | asyncpg.Pool, token: str) -> ApiClient | None:
    """The active API client holding this token."""
    row = await conn.fetchrow(
        "SELECT id, name, role, worker_id, device_id, owner_code FROM api_clients WHERE token_sha256 = $1 AND active",
        token_hash(token),
    )
    return ApiClient(**dict(row)) if row else None


async def add_client(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    name: str,
    role: str,
    token: str,
    worker_id: str | None = None,
    device_id: str | None = None,
    owner_code: str | None = None,
) -> None:
    """Register (or re-activate with new details) the client holding this token."""
    await conn.execute(
        """INSERT INTO api_clients(name, role, token_sha256, worker_id, device_id, owner_code)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (token_sha256) DO UPDATE SET name = $1, role = $2, worker_id = $4, device_id = $5,
               owner_code = $6, active = true""",
        name, role, token_hash(token), worker_id, device_id, owner_code,
    )


def _stored(row: asyncpg.Record) -> StoredCase:
    return StoredCase(str(row["case_id"]), row["case_no"], row["state"], row["unit_grid"], row["hold_reason"])

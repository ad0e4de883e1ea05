"""Set-based SQL for taking reports: a partition's batch looked up and stored in one statement each (unnest), not
one pair of statements per report."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from services.intake.adapters.repository import StoredCase, _RECEIPT, _stored

# Who sent a report, as its idempotency key (migration 003, index reports_once_per_sender):
# (source, received_via, client or '', external_id).
SenderKey = tuple[str, str, str, str]


async def found_by_senders(conn: asyncpg.Connection, keys: list[SenderKey]) -> dict[SenderKey, StoredCase]:
    """The cases already made of these (source, via, client, external_id), by key."""
    if not keys:
        return {}
    rows = await conn.fetch(
        f"""SELECT {', '.join(f'r.{c.strip()}' for c in _RECEIPT.split(','))},
                   k.source, k.via, k.sender, k.external_id
              FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k(source, via, sender, external_id)
              JOIN reports r ON r.source = k.source AND r.received_via = k.via AND coalesce(r.client, '') = k.sender
                            AND r.external_id = k.external_id""",
        *(list(column) for column in zip(*keys)))
    return {(r["source"], r["via"], r["sender"], r["external_id"]): _stored(r) for r in rows}


@dataclass(frozen=True)
class NewReport:
    """One row of reports, as a new case."""

    case_id: uuid.UUID
    case_no: str
    source: str
    external_id: str
    category: str | None
    description: str
    lon: float | None
    lat: float | None
    address: str | None
    unit_grid: str | None
    reporter: dict[str, Any] | None
    coordinator: dict[str, Any] | None
    media: list[str]
    observed_at: datetime
    received_at: datetime
    received_via: str
    client: str | None
    state: str
    hold_reason: str | None
    resident_keys: list[str]


_COLUMNS = list(NewReport.__dataclass_fields__)
_JSON = {"reporter", "coordinator", "media", "resident_keys"}  # passed as JSON text (SQL NULL stays NULL)
_TYPES = {"case_id": "uuid", "lon": "float8", "lat": "float8", "observed_at": "timestamptz",
          "received_at": "timestamptz"}


def _selected(column: str) -> str:
    if column == "resident_keys":
        return "ARRAY(SELECT jsonb_array_elements_text(v.resident_keys::jsonb))"
    return f"v.{column}::jsonb" if column in _JSON else f"v.{column}"


_INSERT = f"""
INSERT INTO reports ({", ".join(_COLUMNS)})
SELECT {", ".join(map(_selected, _COLUMNS))}
  FROM unnest({", ".join(f"${i}::{_TYPES.get(c, 'text')}[]" for i, c in enumerate(_COLUMNS, start=1))})
       AS v({", ".join(_COLUMNS)})
-- Another instance (or HTTP) took the same report meanwhile: its case is the one, this row is not written. A case
-- number twice would still fail loudly (only the sender's key is the conflict target).
ON CONFLICT (source, received_via, (coalesce(client, '')), external_id) DO NOTHING
RETURNING case_id"""


async def insert_reports(conn: asyncpg.Connection, rows: list[NewReport]) -> set[uuid.UUID]:
    """Store these new cases in one statement; the ids of those written (a sender's key taken meanwhile is not)."""
    if not rows:
        return set()
    columns = [[_json(getattr(row, c)) if c in _JSON else getattr(row, c) for row in rows] for c in _COLUMNS]
    return {r["case_id"] for r in await conn.fetch(_INSERT, *columns)}


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()

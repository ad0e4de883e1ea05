"""SQL on notify's own tables (contacts, deliveries), on a connection the caller's transaction holds."""
from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from services.notify.domain.delivery import Transition
from services.notify.domain.replies import DeliveryPlan

DUE_BATCH = 20


async def save_contact(
    conn: asyncpg.Connection, *, case_id: str, case_no: str, name: str | None, phone: str, event_id: str
) -> None:
    """Remember who to answer for a case (the latest report wins)."""
    await conn.execute(
        """
        INSERT INTO contacts(case_id, case_no, name, phone, source_event_id) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (case_id) DO UPDATE
           SET case_no = excluded.case_no, name = excluded.name, phone = excluded.phone,
               source_event_id = excluded.source_event_id, updated_at = now()
        """,
        case_id, case_no, name, phone, event_id,
    )


async def contact_of(conn: asyncpg.Connection, case_id: str) -> asyncpg.Record | None:
    """The contact of a case, if the report gave one."""
    return await conn.fetchrow("SELECT case_id, case_no, name, phone FROM contacts WHERE case_id = $1", case_id)


async def add_delivery(
    conn: asyncpg.Connection, plan: DeliveryPlan, *, case_id: str, case_no: str, event_id: str
) -> str | None:
    """Insert a delivery; its id, or None when this event (or this case's acknowledgement) already has one."""
    return await conn.fetchval(
        """
        INSERT INTO deliveries(id, case_id, case_no, kind, channel, to_phone, text, state, last_error, source_event_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        ON CONFLICT DO NOTHING
        RETURNING id::text
        """,
        uuid.uuid4(), case_id, case_no, plan.kind, plan.channel, plan.to, plan.text, plan.state, plan.detail, event_id,
    )


async def lock_due(conn: asyncpg.Connection, limit: int = DUE_BATCH) -> list[asyncpg.Record]:
    """Pending deliveries whose time has come, locked for this transaction; other workers skip them."""
    return await conn.fetch(
        """
        SELECT id::text AS id, case_id, case_no, kind, channel, to_phone, text, attempts
          FROM deliveries
         WHERE state = 'pending' AND next_attempt_at <= now()
         ORDER BY created_at
         LIMIT $1
           FOR UPDATE SKIP LOCKED
        """,
        limit,
    )


async def record_attempt(conn: asyncpg.Connection, delivery_id: str, transition: Transition) -> None:
    """Store the state after an attempt; a retry is scheduled from the wall clock, not the transaction's start."""
    await conn.execute(
        """
        UPDATE deliveries
           SET state = $2, attempts = $3, last_error = $4, updated_at = now(),
               next_attempt_at = CASE WHEN $5::float8 IS NULL THEN next_attempt_at
                                      ELSE clock_timestamp() + $5::float8 * interval '1 second' END,
               sent_at = CASE WHEN $2 = 'sent' THEN clock_timestamp() ELSE sent_at END
         WHERE id = $1::uuid
        """,
        delivery_id, transition.state, transition.attempts, transition.error, transition.retry_in,
    )


async def list_deliveries(
    conn: asyncpg.Connection | asyncpg.Pool, *, case_no: str | None, state: str | None, limit: int
) -> list[dict[str, Any]]:
    """Deliveries for the operator view, newest first (phone numbers still in clear: mask before showing)."""
    rows = await conn.fetch(
        """
        SELECT id::text AS id, case_id, case_no, kind, channel, to_phone, text, state, attempts, last_error,
               created_at, updated_at, sent_at
          FROM deliveries
         WHERE ($1::text IS NULL OR case_no = $1) AND ($2::text IS NULL OR state = $2)
         ORDER BY created_at DESC
         LIMIT $3
        """,
        case_no, state, limit,
    )
    return [dict(r) for r in rows]

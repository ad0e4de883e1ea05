"""SQL for a partition's batch of case events and contacts (services/notify/handlers.py) on notify's contacts,
followers, case_sources, expected_contacts, case_status and deliveries: each function is one statement whatever the
batch's size (unnest, = ANY). adapters/repository.py holds what the HTTP entrypoints and the workers use."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.notify.domain.replies import DeliveryPlan

Conn = asyncpg.Connection | asyncpg.Pool


def _columns(rows: list[tuple]) -> list[list]:
    """Rows → one list per column, for unnest($1, $2, …)."""
    return [list(column) for column in zip(*rows)]


async def lock_residents_of(conn: Conn, case_ids: list[str]) -> None:
    """repository.lock_residents for every case of a batch in one statement. The locks are taken in the order of
    their keys, so two batches (cases and contacts) locking overlapping cases wait for each other, never deadlock."""
    if not case_ids:
        return
    await conn.execute(
        """SELECT pg_advisory_xact_lock(k) FROM (
               SELECT DISTINCT hashtextextended(current_schema() || ':residents:' || c, 0) AS k
                 FROM unnest($1::text[]) AS c ORDER BY 1) AS keys""",
        case_ids,
    )


@dataclass(frozen=True)
class Facts:
    """What a reply to a case's reporter depends on: their contact (if notify holds it), how the case came in, and
    where the reporter stands: known (a contact), erased, awaiting (a phone or e-mail was given and its contact has
    not arrived) or none (nothing given)."""

    phone: str | None
    email: str | None
    source: str | None
    standing: str  # known, erased, awaiting, none


NO_FACTS = Facts(None, None, None, "none")


async def facts_of(conn: Conn, case_ids: list[str]) -> dict[str, Facts]:
    """Facts of each case, in one statement."""
    if not case_ids:
        return {}
    rows = await conn.fetch(
        """
        SELECT c.case_id, k.phone, k.email, s.source, k.case_id IS NOT NULL AS known,
               EXISTS (SELECT 1 FROM erasures e WHERE e.case_id = c.case_id) AS erased,
               EXISTS (SELECT 1 FROM expected_contacts x WHERE x.case_id = c.case_id) AS expected
          FROM (SELECT DISTINCT unnest($1::text[]) AS case_id) AS c
          LEFT JOIN contacts k ON k.case_id = c.case_id
          LEFT JOIN case_sources s ON s.case_id = c.case_id
        """,
        case_ids,
    )
    return {r["case_id"]: Facts(r["phone"], r["email"], r["source"],
                                "known" if r["known"] else "erased" if r["erased"] else
                                "awaiting" if r["expected"] else "none") for r in rows}


async def recipients_of(conn: Conn, case_ids: list[str]) -> dict[str, list[asyncpg.Record]]:
    """Every resident who hears each case's replies, in one statement: case id → rows (phone, email, reporter).
    Its reporter and its followers, one per phone, or per e-mail address for one who gave no phone (an e-mail-only
    reporter and an e-mail-only follower are two people, not one empty phone)."""
    found: dict[str, list[asyncpg.Record]] = {}
    if not case_ids:
        return found
    rows = await conn.fetch(
        """
        SELECT DISTINCT ON (case_id, who) case_id, phone, email, rank = 0 AS reporter FROM (
            SELECT case_id, phone, email, 0 AS rank, created_at,
                   CASE WHEN phone_norm <> '' THEN phone_norm ELSE 'email:' || lower(btrim(coalesce(email, ''))) END AS who
              FROM contacts WHERE case_id = ANY($1::text[])
            UNION ALL
            SELECT case_id, phone, email, 1 AS rank, created_at,
                   CASE WHEN phone_norm <> '' THEN phone_norm ELSE 'email:' || lower(btrim(coalesce(email, ''))) END
              FROM followers WHERE case_id = ANY($1::text[])
        ) AS r
        ORDER BY case_id, who, rank, created_at
        """,
        list(set(case_ids)),
    )
    for r in rows:
        found.setdefault(r["case_id"], []).append(r)
    return found


async def record_sources(conn: Conn, sources: list[tuple[str, str]]) -> None:
    """(case id, source) of each case.reported: the reply channel is chosen by it (the first one stays)."""
    if sources:
        await conn.execute("INSERT INTO case_sources (case_id, source) SELECT * FROM unnest($1::text[], $2::text[]) "
                           "ON CONFLICT DO NOTHING", *_columns(sources))


async def expect_contacts(conn: Conn, expected: list[tuple[str, str, str]]) -> None:
    """(case id, case no, event id): these reports gave a phone or an e-mail; their contact.recorded is coming."""
    if expected:
        await conn.execute(
            """INSERT INTO expected_contacts(case_id, case_no, source_event_id)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT (case_id) DO NOTHING""",
            *_columns(expected))


@dataclass(frozen=True)
class StatusRow:
    case_id: str
    case_no: str
    state: str
    event_id: str
    at: datetime
    followed_case_id: str | None = None
    followed_case_no: str | None = None


async def set_statuses(conn: Conn, rows: list[StatusRow]) -> None:
    """Each case's resident-facing state after a run of events, one row per case (the caller keeps each case's
    latest: one statement may not update a row twice)."""
    if not rows:
        return
    await conn.execute(
        """
        INSERT INTO case_status(case_id, case_no, state, followed_case_id, followed_case_no, event_id, changed_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                             $7::timestamptz[])
        ON CONFLICT (case_id) DO UPDATE
           SET case_no = excluded.case_no, state = excluded.state,
               followed_case_id = coalesce(excluded.followed_case_id, case_status.followed_case_id),
               followed_case_no = coalesce(excluded.followed_case_no, case_status.followed_case_no),
               event_id = excluded.event_id, changed_at = excluded.changed_at, updated_at = now()
        """,
        *_columns([(r.case_id, r.case_no, r.state, r.followed_case_id, r.followed_case_no, r.event_id, r.at)
                   for r in rows]),
    )


@dataclass(frozen=True)
class NewDelivery:
    """One delivery to insert: its plan, the case and the event it answers."""

    id: str
    plan: DeliveryPlan
    case_id: str
    case_no: str
    event_id: str
    expires_at: datetime


def new_delivery(plan: DeliveryPlan, *, case_id: str, case_no: str, event_id: str,
                 expires_at: datetime) -> NewDelivery:
    return NewDelivery(str(uuid.uuid4()), plan, case_id, case_no, event_id, expires_at)


async def add_deliveries(conn: Conn, deliveries: list[NewDelivery]) -> set[str]:
    """Insert deliveries in one statement: the ids inserted. One that its occasion already has for its recipient
    and kind (a replay under another id, or an earlier row of this batch) is left out."""
    if not deliveries:
        return set()
    rows = await conn.fetch(
        """
        INSERT INTO deliveries(id, case_id, case_no, kind, template, channel, to_phone, text, state, last_error,
                               source_event_id, expires_at)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                             $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[])
        ON CONFLICT DO NOTHING
        RETURNING id::text
        """,
        *_columns([(uuid.UUID(d.id), d.case_id, d.case_no, d.plan.kind, d.plan.template or d.plan.kind,
                    d.plan.channel, d.plan.to, d.plan.text, d.plan.state, d.plan.detail, d.event_id, d.expires_at)
                   for d in deliveries]),
    )
    return {r["id"] for r in rows}


# ---- contacts ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ContactRow:
    case_id: str
    case_no: str
    name: str | None
    phone: str
    phone_norm: str
    event_id: str
    email: str | None = None


async def erased_among(conn: Conn, case_ids: list[str]) -> set[str]:
    """Those of these cases whose residents' data was erased already."""
    rows = await conn.fetch("SELECT DISTINCT case_id FROM erasures WHERE case_id = ANY($1::text[])", case_ids)
    return {r["case_id"] for r in rows}


async def save_contacts(conn: Conn, contacts: list[ContactRow]) -> set[str]:
    """Remember who to answer for each case: the event ids whose contact was kept. The resident who reported is the
    one to answer and the one whose phone opens the case's survey and my-case: a later contact.recorded for the case
    (a replay under another id, or anyone who got one onto the topic) never replaces the first (issue 18), also
    against a later one in the same batch (rows are inserted in the batch's order)."""
    if not contacts:
        return set()
    rows = await conn.fetch(
        """
        INSERT INTO contacts(case_id, case_no, name, phone, phone_norm, source_event_id, email)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
        ON CONFLICT (case_id) DO NOTHING
        RETURNING source_event_id
        """,
        *_columns([(c.case_id, c.case_no, c.name, c.phone, c.phone_norm, c.event_id, c.email) for c in contacts]),
    )
    return {r["source_event_id"] for r in rows}


async def follow_late(conn: Conn, case_ids: list[str]) -> dict[str, int]:
    """For a batch of contacts just saved (their rows in contacts): each resident whose case
    was merged before the contact arrived follows the case it was merged into (and so on up the chain), unless that
    one's data was erased. Case id → how many cases it now follows."""
    rows = await conn.fetch(
        """
        WITH RECURSIVE chain(origin, case_id) AS (
            SELECT case_id, followed_case_id FROM case_status
             WHERE case_id = ANY($1::text[]) AND followed_case_id IS NOT NULL
            UNION
            SELECT c.origin, s.followed_case_id FROM case_status s JOIN chain c ON s.case_id = c.case_id
             WHERE s.followed_case_id IS NOT NULL
        )
        INSERT INTO followers(case_id, follower_case_id, follower_case_no, phone, phone_norm, source_event_id, email)
        SELECT chain.case_id, k.case_id, k.case_no, k.phone, k.phone_norm, k.source_event_id, k.email
          FROM chain JOIN contacts k ON k.case_id = chain.origin
         WHERE NOT EXISTS (SELECT 1 FROM erasures e WHERE e.case_id = chain.case_id)
        ON CONFLICT (case_id, follower_case_id) DO NOTHING
        RETURNING follower_case_id
        """,
        case_ids,
    )
    followed: dict[str, int] = {}
    for r in rows:
        followed[r["follower_case_id"]] = followed.get(r["follower_case_id"], 0) + 1
    return followed


async def awaiting_deliveries(conn: Conn, case_ids: list[str]) -> list[asyncpg.Record]:
    """The replies of these cases waiting for their contact, locked, each case's oldest first."""
    return await conn.fetch(
        """SELECT id::text AS id, case_id, case_no, kind, text, source_event_id FROM deliveries
            WHERE case_id = ANY($1::text[]) AND state = 'awaiting_contact'
            ORDER BY case_id, created_at FOR UPDATE""",
        case_ids,
    )


@dataclass(frozen=True)
class Release:
    """An awaiting reply's route, now that its contact came: address, state (pending or held), why held, channel."""

    delivery_id: str
    to: str
    state: str
    detail: str | None
    channel: str


async def release_all(conn: Conn, releases: list[Release]) -> set[str]:
    """Awaiting replies get their address and go pending (or held), in one statement: the ids released. One whose occasion
    already has one to that address (a follower with the reporter's own number) is dropped instead. The delivery
    worker is woken (its trigger fires on inserts only)."""
    if not releases:
        return set()
    rows = await conn.fetch(
        """
        WITH input AS (
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
                       AS i(id, to_phone, state, detail, channel)
        ), dup AS (
            SELECT i.id FROM input i JOIN deliveries w ON w.id = i.id
             WHERE EXISTS (SELECT 1 FROM deliveries d
                            WHERE d.case_id = w.case_id AND d.kind = w.kind AND d.source_event_id = w.source_event_id
                              AND d.to_phone = i.to_phone AND d.resend_of IS NULL)
        ), dropped AS (
            DELETE FROM deliveries WHERE id IN (SELECT id FROM dup) RETURNING id
        ), moved AS (
            UPDATE deliveries AS d
               SET to_phone = i.to_phone, state = i.state, last_error = i.detail, next_attempt_at = now(),
                   updated_at = now(), channel = i.channel
              FROM input i
             WHERE d.id = i.id AND i.id NOT IN (SELECT id FROM dup)
            RETURNING d.id
        )
        SELECT moved.id::text AS id, pg_notify(current_schema() || '_deliveries', '') FROM moved
        """,
        *_columns([(uuid.UUID(r.delivery_id), r.to, r.state, r.detail, r.channel) for r in releases]),
    )
    return {r["id"] for r in rows}

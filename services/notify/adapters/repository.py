"""SQL on notify's own tables (contacts, expected_contacts, followers, case_status, deliveries, surveys,
lookup_failures, erasure_due, erasures).

Every function runs on a connection (or pool) the caller holds; the caller's transaction decides.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg

from services.notify.domain.delivery import Transition

DUE_BATCH = 100  # deliveries claimed at once by a worker (it sends them over the gateway's connections)

Conn = asyncpg.Connection | asyncpg.Pool

_DELIVERY_FIELDS = (
    "case_id", "case_no", "kind", "template", "channel", "to_phone", "text", "state", "attempts", "last_error",
    "source_event_id", "created_at", "updated_at", "sent_at", "next_attempt_at", "expires_at", "lease_until",
    "uncertain_since", "requested_by",
)


def _columns(alias: str = "") -> str:
    """A delivery's columns as the callers read them (ids as text), optionally qualified by a table alias."""
    p = f"{alias}." if alias else ""
    return ", ".join([f"{p}id::text AS id", f"{p}resend_of::text AS resend_of", *(p + f for f in _DELIVERY_FIELDS)])


_DELIVERY_COLUMNS = _columns()


# ---- contacts and followers --------------------------------------------------------------------


async def contact_of(conn: Conn, case_id: str) -> asyncpg.Record | None:
    """The contact of a case, if the report gave one."""
    return await conn.fetchrow("SELECT case_id, case_no, name, phone, email FROM contacts WHERE case_id = $1",
                               case_id)


async def add_followers(conn: Conn, *, into_case_id: str, case_id: str, case_no: str, event_id: str) -> int:
    """The duplicate's reporter (and whoever already followed the duplicate) now follow `into_case_id`."""
    result = await conn.execute(
        """
        INSERT INTO followers(case_id, follower_case_id, follower_case_no, phone, phone_norm, source_event_id, email)
        SELECT $1, $2, $3, phone, phone_norm, $4, email FROM contacts WHERE case_id = $2
        UNION ALL
        SELECT $1, follower_case_id, follower_case_no, phone, phone_norm, $4, email FROM followers WHERE case_id = $2
        ON CONFLICT (case_id, follower_case_id) DO NOTHING
        """,
        into_case_id, case_id, case_no, event_id,
    )
    return int(result.split()[-1])


async def is_resident_of(conn: Conn, case_id: str, phone_norm: str) -> bool:
    """Whether this phone reported the case or follows it."""
    return bool(await conn.fetchval(
        """
        SELECT EXISTS (SELECT 1 FROM contacts WHERE case_id = $1 AND phone_norm = $2)
            OR EXISTS (SELECT 1 FROM followers WHERE case_id = $1 AND phone_norm = $2)
        """,
        case_id, phone_norm,
    ))


# ---- the resident-facing status ----------------------------------------------------------------


async def status_by_case_no(conn: Conn, case_no: str) -> asyncpg.Record | None:
    """A case's status row by its number (the latest if a number were ever reused)."""
    return await conn.fetchrow(
        """
        SELECT case_id, case_no, state, followed_case_id, followed_case_no, changed_at
          FROM case_status WHERE case_no = $1 ORDER BY changed_at DESC LIMIT 1
        """,
        case_no,
    )


async def status_of(conn: Conn, case_id: str) -> asyncpg.Record | None:
    """A case's status row by its id."""
    return await conn.fetchrow(
        "SELECT case_id, case_no, state, followed_case_id, followed_case_no, changed_at FROM case_status "
        "WHERE case_id = $1",
        case_id,
    )


# ---- deliveries --------------------------------------------------------------------------------


async def claim_due(conn: Conn, *, lease_seconds: float, token: uuid.UUID, limit: int = DUE_BATCH,
                    at: datetime | None = None) -> list[asyncpg.Record]:
    """Take due deliveries for sending: pending ones whose time has come, and ones whose sender's lease
    ran out (marked uncertain: they may have reached the gateway), up to `limit` in all. Commit before sending.

    A recipient hears a case's replies in order: a pending one is taken only when no earlier one of the case to the
    same address is pending or being sent (claims, sends and records overlap in the worker, so without it a case's
    next reply could be claimed while its last one was still out).

    Two index scans, not one condition with OR: PostgreSQL answers an OR with a bitmap scan, which never marks the
    index entries of rows already sent as dead, so every poll walked all of them again until a vacuum (0.9 ms a
    poll after a burst, a poll per delivery under a steady stream); a plain index scan marks them once.

    Each recipient's first unsettled reply is found in one pass over the unsettled rows (their partial index), not by
    a NOT EXISTS probe per due row: planned while the statistics said almost nothing was pending (as they do after
    any quiet spell), that probe scanned every unsettled row for each due one — 111 × 92 rows, 39,000 buffers, a
    third of PostgreSQL's work per case in a burst of 3,000 (bench.statements)."""
    return await conn.fetch(
        f"""
        WITH first_due AS (
            -- Of a case's replies to one address the one being sent, else the earliest pending; the due ones of
            -- those, the earliest $1 (then locked by their key: no plan can turn that into a scan per row).
            SELECT id FROM (
                SELECT DISTINCT ON (case_id, to_phone) id, state, next_attempt_at FROM deliveries
                 WHERE state IN ('pending', 'sending')
                 ORDER BY case_id, to_phone, state = 'sending' DESC, next_attempt_at, created_at, id
            ) AS first
             WHERE state = 'pending' AND next_attempt_at <= greatest(now(), $4::timestamptz)
             ORDER BY next_attempt_at
             LIMIT $1
        ), pending AS (
            SELECT id, 'pending'::text AS was FROM deliveries
             WHERE id = ANY(ARRAY(SELECT id FROM first_due)) AND state = 'pending'
               FOR UPDATE SKIP LOCKED
        ), lapsed AS (
            SELECT id, 'sending'::text AS was FROM deliveries
             WHERE state = 'sending' AND lease_until < now()
             ORDER BY lease_until
             LIMIT $1
               FOR UPDATE SKIP LOCKED
        ), due AS (
            -- At most `limit` in all (a batch is sent at once, within the lease), lapsed ones first: the older.
            (SELECT id, was FROM lapsed UNION ALL SELECT id, was FROM pending) LIMIT $1
        )
        UPDATE deliveries AS d
           SET state = 'sending', lease_token = $3, updated_at = now(),
               lease_until = clock_timestamp() + $2::float8 * interval '1 second',
               uncertain_since = CASE WHEN due.was = 'sending' THEN coalesce(d.uncertain_since, now())
                                      ELSE d.uncertain_since END
          FROM due
         WHERE d.id = due.id
        RETURNING {_columns("d")}, due.was AS was
        """,
        limit, lease_seconds, token, at,
    )


async def defer_all(conn: Conn, token: uuid.UUID, deferred: list[tuple[str, datetime]]) -> set[str]:
    """Put claimed deliveries back, untried, each until its `until` (the end of the quiet hours), in one statement;
    each one's useful life is moved on by as much, so that a night's wait does not expire it. The ids this worker
    still held (another worker may have taken one over)."""
    if not deferred:
        return set()
    rows = await conn.fetch(
        """UPDATE deliveries AS d
              SET state = 'pending', next_attempt_at = o.until, lease_until = NULL, lease_token = NULL,
                  expires_at = greatest(d.expires_at, o.until + (d.expires_at - d.created_at)), updated_at = now()
             FROM unnest($2::uuid[], $3::timestamptz[]) AS o(id, until)
            WHERE d.id = o.id AND d.lease_token = $1 AND d.state = 'sending'
        RETURNING d.id::text AS id""",
        token, [uuid.UUID(i) for i, _ in deferred], [until for _, until in deferred],
    )
    return {r["id"] for r in rows}


async def record_outcomes(conn: Conn, outcomes: list[tuple[str, uuid.UUID, Transition]]) -> set[str]:
    """Store the states after attempts — (delivery id, the lease token it was claimed under, transition) — in one
    statement, for the rows still held under that token (their ids are returned; another worker that took a row over
    records its own send). A retry is scheduled from the wall clock."""
    if not outcomes:
        return set()
    rows = await conn.fetch(
        """
        UPDATE deliveries AS d
           SET state = o.state, attempts = o.attempts, last_error = o.error, updated_at = now(),
               lease_until = NULL, lease_token = NULL,
               next_attempt_at = CASE WHEN o.retry_in IS NULL THEN d.next_attempt_at
                                      ELSE clock_timestamp() + o.retry_in * interval '1 second' END,
               sent_at = CASE WHEN o.state = 'sent' THEN clock_timestamp() ELSE d.sent_at END
          FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::text[], $6::float8[])
               AS o(id, token, state, attempts, error, retry_in)
         WHERE d.id = o.id AND d.lease_token = o.token AND d.state = 'sending'
        RETURNING d.id::text AS id
        """,
        [uuid.UUID(str(i)) for i, _, _ in outcomes], [token for _, token, _ in outcomes],
        [t.state for _, _, t in outcomes], [t.attempts for _, _, t in outcomes], [t.error for _, _, t in outcomes],
        [t.retry_in for _, _, t in outcomes],
    )
    return {r["id"] for r in rows}


async def list_deliveries(
    conn: Conn, *, case_no: str | None, state: str | None, uncertain: bool | None, limit: int
) -> list[dict[str, Any]]:
    """Deliveries for the operator view, newest first (phone numbers still in clear: mask before showing)."""
    rows = await conn.fetch(
        f"""
        SELECT {_DELIVERY_COLUMNS}
          FROM deliveries
         WHERE ($1::text IS NULL OR case_no = $1) AND ($2::text IS NULL OR state = $2)
           AND ($3::bool IS NULL OR (uncertain_since IS NOT NULL) = $3)
         ORDER BY created_at DESC
         LIMIT $4
        """,
        case_no, state, uncertain, limit,
    )
    return [dict(r) for r in rows]


async def delivery_for_update(conn: Conn, delivery_id: uuid.UUID) -> asyncpg.Record | None:
    """One delivery, locked until the transaction ends."""
    return await conn.fetchrow(f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE id = $1 FOR UPDATE", delivery_id)


async def resend_of(conn: Conn, delivery_id: uuid.UUID) -> str | None:
    """The id of the delivery that already resends this one, if any."""
    return await conn.fetchval("SELECT id::text FROM deliveries WHERE resend_of = $1", delivery_id)


async def add_resend(conn: Conn, original: asyncpg.Record, *, expires_at: datetime, requested_by: str) -> str:
    """A new pending delivery of a failed one's text to the same address, with a fresh id (a new
    idempotency key: the gateway refused or never got the old one) and a fresh expiry."""
    return await conn.fetchval(
        """
        INSERT INTO deliveries(id, case_id, case_no, kind, template, channel, to_phone, text, state,
                               source_event_id, expires_at, resend_of, requested_by)
        SELECT $1, case_id, case_no, kind, template, channel, to_phone, text, 'pending',
               source_event_id, $3, id, $4
          FROM deliveries WHERE id = $2
        RETURNING id::text
        """,
        uuid.uuid4(), uuid.UUID(original["id"]), expires_at, requested_by,
    )


async def deliveries_of_cases(conn: Conn, case_ids: list[str]) -> list[dict[str, Any]]:
    """Every delivery of these cases, oldest first."""
    rows = await conn.fetch(
        f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE case_id = ANY($1::text[]) ORDER BY created_at",
        case_ids,
    )
    return [dict(r) for r in rows]


async def delivery_backlog(conn: Conn) -> dict[str, int]:
    """How many deliveries wait (pending or sending) and how many failed without a resend."""
    row = await conn.fetchrow(
        """
        SELECT count(*) FILTER (WHERE state IN ('pending', 'sending', 'awaiting_contact')) AS waiting,
               count(*) FILTER (WHERE state = 'failed'
                                  AND NOT EXISTS (SELECT 1 FROM deliveries r WHERE r.resend_of = d.id)) AS failed
          FROM deliveries d
         WHERE state IN ('pending', 'sending', 'failed', 'awaiting_contact')
        """
    )
    return {"waiting": row["waiting"], "failed": row["failed"]}


# ---- surveys -----------------------------------------------------------------------------------

async def open_survey(
    conn: Conn, *, case_id: str, case_no: str, event_id: str, opened_at: datetime, closes_at: datetime
) -> str | None:
    """Record the survey of one closing; its id, or None if this closing already has one."""
    return await conn.fetchval(
        """
        INSERT INTO surveys(survey_id, case_id, case_no, source_event_id, opened_at, closes_at)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (source_event_id) DO NOTHING
        RETURNING survey_id::text
        """,
        uuid.uuid4(), case_id, case_no, event_id, opened_at, closes_at,
    )


async def latest_survey(conn: Conn, case_id: str) -> asyncpg.Record | None:
    """The survey of the case's latest closing, if it was ever closed."""
    return await conn.fetchrow(
        """
        SELECT survey_id::text AS survey_id, case_id, case_no, opened_at, closes_at, answered_at, verdict
          FROM surveys WHERE case_id = $1 ORDER BY opened_at DESC LIMIT 1
        """,
        case_id,
    )


async def latest_open_survey_for_phone(conn: Conn, phone_norm: str, at: datetime) -> asyncpg.Record | None:
    """The most recently opened unanswered survey, still within its window at `at` (notify's clock), of a case
    this phone reported or follows."""
    return await conn.fetchrow(
        """
        SELECT survey_id::text AS survey_id, case_id, case_no, opened_at, closes_at, answered_at, verdict
          FROM surveys
         WHERE answered_at IS NULL AND closes_at > $2
           AND case_id IN (SELECT case_id FROM contacts WHERE phone_norm = $1
                           UNION SELECT case_id FROM followers WHERE phone_norm = $1)
         ORDER BY opened_at DESC
         LIMIT 1
        """,
        phone_norm, at,
    )


async def answer_survey(
    conn: Conn, survey_id: str, *, verdict: str, comment: str | None, channel: str, at: datetime
) -> asyncpg.Record | None:
    """Store the answer given at `at` (notify's clock) if the survey is then still open and unanswered (the first
    answer counts); else None."""
    return await conn.fetchrow(
        """
        UPDATE surveys SET answered_at = $5, verdict = $2, comment = $3, channel = $4
         WHERE survey_id = $1::uuid AND answered_at IS NULL AND closes_at > $5
        RETURNING survey_id::text AS survey_id, case_id, case_no, answered_at, closes_at
        """,
        survey_id, verdict, comment, channel, at,
    )


# ---- failed look-ups ---------------------------------------------------------------------------

async def recent_failures(conn: Conn, *, case_no: str, client_ip: str, since: datetime) -> tuple[list, list]:
    """When this client's look-ups failed since `since`: of this case number, and of any case.

    Only the client's own failures count, so no one elsewhere can lock a resident out of their case.
    """
    rows = await conn.fetch(
        "SELECT case_no = $1 AS same_case, failed_at FROM lookup_failures WHERE client_ip = $2 AND failed_at > $3",
        case_no, client_ip, since,
    )
    return [r["failed_at"] for r in rows if r["same_case"]], [r["failed_at"] for r in rows]


async def record_failure(conn: Conn, *, case_no: str, client_ip: str, forget_before: datetime) -> None:
    """Note one failed look-up, and forget failures too old to matter (the table holds minutes of them)."""
    await conn.execute("DELETE FROM lookup_failures WHERE failed_at < $1", forget_before)
    await conn.execute("INSERT INTO lookup_failures(case_no, client_ip) VALUES ($1, $2)", case_no, client_ip)


# ---- contacts that have not arrived yet ------------------------------------------------------------

async def lock_residents(conn: Conn, case_id: str) -> None:
    """Serialise, until the transaction ends, everything that reads or changes who a case's residents
    are: its contact arriving (wangge.contacts), replies being planned for it (wangge.cases) and its
    erasure. Without it, a contact committed while a reply is planned would leave that reply waiting
    for a contact that already came. (Two consumers locking two cases in opposite orders is a
    deadlock PostgreSQL breaks; the consumer retries the batch.)"""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ':residents:' || $1, 0))",
                       case_id)


# ---- erasure -------------------------------------------------------------------------------------

async def schedule_erasure(conn: Conn, *, case_id: str, case_no: str, window_closes_at: datetime | None) -> None:
    """When the case's residents' data falls due (erase_after_days after window_closes_at); None: not while
    the case is open again."""
    await conn.execute(
        """
        INSERT INTO erasure_due(case_id, case_no, window_closes_at) VALUES ($1, $2, $3)
        ON CONFLICT (case_id) DO UPDATE
           SET case_no = excluded.case_no, window_closes_at = excluded.window_closes_at, updated_at = now()
        """,
        case_id, case_no, window_closes_at,
    )


async def claim_erasures(conn: Conn, *, after_days: float, at: datetime, skip: list[str] | None = None,
                         limit: int = DUE_BATCH) -> list[asyncpg.Record]:
    """Cases due for erasure at `at` (notify's clock; but those in `skip`), locked (FOR UPDATE SKIP LOCKED: any number of notify
    instances)."""
    return await conn.fetch(
        """
        SELECT case_id, case_no, window_closes_at FROM erasure_due
         WHERE window_closes_at IS NOT NULL AND window_closes_at + $1::float8 * interval '1 day' <= $4
           AND case_id <> ALL($3::text[])
         ORDER BY window_closes_at
         LIMIT $2
           FOR UPDATE SKIP LOCKED
        """,
        after_days, limit, skip or [], at,
    )


async def erasure_done(conn: Conn, case_id: str) -> None:
    """Nothing more due for this case until it is closed (and its survey window ends) again."""
    await conn.execute("UPDATE erasure_due SET window_closes_at = NULL, updated_at = now() WHERE case_id = $1",
                       case_id)


async def personal_data_of(conn: Conn, case_id: str) -> dict[str, Any]:
    """The residents' data notify holds for a case, deliveries locked: the case's own cases (it and the
    duplicates merged into it), and what of each is there."""
    follower_cases = await conn.fetch(
        "SELECT follower_case_id, follower_case_no FROM followers WHERE case_id = $1", case_id)
    case_ids = [case_id, *(r["follower_case_id"] for r in follower_cases)]
    contacts = await conn.fetch("SELECT case_id, case_no, name FROM contacts WHERE case_id = ANY($1::text[])",
                                case_ids)
    deliveries = await conn.fetch(
        "SELECT id::text AS id, case_id, case_no, kind, channel, to_phone, text, state, attempts, source_event_id "
        "FROM deliveries WHERE case_id = ANY($1::text[]) ORDER BY created_at FOR UPDATE",
        case_ids,
    )
    return {"case_ids": case_ids, "follower_cases": {r["follower_case_id"]: r["follower_case_no"] for r in follower_cases},
            "contacts": {r["case_id"]: r for r in contacts}, "deliveries": deliveries}


async def erase_contacts(conn: Conn, case_ids: list[str]) -> None:
    """The residents' names and phones of these cases, their followers' phones, and waiting contacts."""
    await conn.execute("DELETE FROM contacts WHERE case_id = ANY($1::text[])", case_ids)
    await conn.execute("DELETE FROM followers WHERE case_id = ANY($1::text[]) OR follower_case_id = ANY($1::text[])",
                       case_ids)
    await conn.execute("DELETE FROM expected_contacts WHERE case_id = ANY($1::text[])", case_ids)


async def erase_delivery(conn: Conn, delivery_id: str, *, to: str, state: str | None, error: str | None) -> None:
    """A delivery's address replaced by its masked form; a reply still waiting settled (state, error)."""
    await conn.execute(
        """UPDATE deliveries SET to_phone = $2, updated_at = now(),
                  state = coalesce($3, state), last_error = CASE WHEN $3::text IS NULL THEN last_error ELSE $4 END,
                  lease_until = NULL, lease_token = NULL
            WHERE id = $1::uuid""",
        delivery_id, to, state, error,
    )


async def forget_lookups(conn: Conn, case_nos: list[str]) -> None:
    """Failed look-ups of these cases (they hold the callers' addresses)."""
    await conn.execute("DELETE FROM lookup_failures WHERE case_no = ANY($1::text[])", case_nos)


async def record_erasure(conn: Conn, *, case_id: str, case_no: str, erased_at: datetime, what: list[str],
                         event_id: str) -> None:
    """The record that this case's residents' data was erased, and what of it."""
    await conn.execute(
        "INSERT INTO erasures(case_id, case_no, erased_at, what, event_id) VALUES ($1, $2, $3, $4, $5)",
        case_id, case_no, erased_at, what, event_id,
    )

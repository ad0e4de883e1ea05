"""SQL of residents on the web: one-time codes, wrong tries, sessions, and a resident's own cases.

A resident proves a phone or an e-mail address (migration 008): `column` names which ("phone_norm" or "email_norm",
never anything a caller sent), `address` its normalised value."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


ADDRESS_COLUMNS = frozenset({"phone_norm", "email_norm"})


def _column(column: str) -> str:
    if column not in ADDRESS_COLUMNS:
        raise ValueError(f"not an address column: {column!r}")
    return column


async def codes_asked(conn: Conn, *, column: str, address: str, client_ip: str, since: datetime) -> tuple[int, int]:
    """How many codes this phone or address, and this client address, asked for since `since`."""
    c = _column(column)
    row = await conn.fetchrow(
        f"""SELECT count(*) FILTER (WHERE {c} = $1) AS by_address, count(*) FILTER (WHERE client_ip = $2) AS by_ip
              FROM resident_codes WHERE created_at > $3 AND ({c} = $1 OR client_ip = $2)""",
        address, client_ip, since)
    return row["by_address"], row["by_ip"]


async def add_code(conn: Conn, *, column: str, address: str, code_hash: str, client_ip: str, expires_at: datetime,
                   forget_before: datetime) -> None:
    """A new code for the phone or address; every earlier code of it is void (only the latest message counts)."""
    c = _column(column)
    await conn.execute("DELETE FROM resident_codes WHERE created_at < $1", forget_before)
    await conn.execute(f"UPDATE resident_codes SET used_at = now() WHERE {c} = $1 AND used_at IS NULL", address)
    await conn.execute(
        f"INSERT INTO resident_codes ({c}, code_hash, client_ip, expires_at) VALUES ($1, $2, $3, $4)",
        address, code_hash, client_ip, expires_at)


async def live_code_for_update(conn: asyncpg.Connection, *, column: str, address: str, at: datetime,
                               max_tries: int) -> asyncpg.Record | None:
    """The latest code of the phone or address if it is unused, unexpired and not voided by wrong tries (locked)."""
    c = _column(column)
    return await conn.fetchrow(
        f"""SELECT id, code_hash FROM resident_codes
             WHERE {c} = $1 AND used_at IS NULL AND expires_at > $2 AND wrong_tries < $3
             ORDER BY created_at DESC LIMIT 1 FOR UPDATE""",
        address, at, max_tries)


async def wrong_try(conn: asyncpg.Connection, code_id: int | None, client_ip: str) -> None:
    if code_id is not None:
        await conn.execute("UPDATE resident_codes SET wrong_tries = wrong_tries + 1 WHERE id = $1", code_id)
    await conn.execute("INSERT INTO resident_code_failures (client_ip) VALUES ($1)", client_ip)


async def failures_of(conn: Conn, client_ip: str, since: datetime) -> int:
    await conn.execute("DELETE FROM resident_code_failures WHERE failed_at < $1", since)
    return await conn.fetchval(
        "SELECT count(*) FROM resident_code_failures WHERE client_ip = $1 AND failed_at > $2", client_ip, since)


async def use_code(conn: asyncpg.Connection, code_id: int) -> None:
    await conn.execute("UPDATE resident_codes SET used_at = now() WHERE id = $1", code_id)


async def add_session(conn: asyncpg.Connection, *, digest: str, resident_id: str, column: str, address: str,
                      expires_at: datetime) -> None:
    # Which phone or address a session stood for is personal data: kept while it may matter (a week past its end),
    # no longer.
    c = _column(column)
    await conn.execute("DELETE FROM resident_sessions WHERE expires_at < now() - interval '7 days'")
    await conn.execute(
        f"INSERT INTO resident_sessions (token_sha256, resident_id, {c}, expires_at) VALUES ($1, $2, $3, $4)",
        digest, resident_id, address, expires_at)


async def session(conn: Conn, digest: str, at: datetime) -> asyncpg.Record | None:
    """A live resident session (not ended, not expired at `at` — notify's clock — and still accepted by the
    registry)."""
    return await conn.fetchrow(
        """SELECT s.resident_id, s.phone_norm, s.email_norm, s.expires_at FROM resident_sessions s
             JOIN credentials c ON c.token_sha256 = s.token_sha256
            WHERE s.token_sha256 = $1 AND s.ended_at IS NULL AND s.expires_at > $2
              AND c.revoked_at IS NULL AND c.role = 'resident'""",
        digest, at)


async def end_session(conn: asyncpg.Connection, digest: str) -> bool:
    return await conn.fetchval(
        "UPDATE resident_sessions SET ended_at = now() WHERE token_sha256 = $1 AND ended_at IS NULL RETURNING true",
        digest) or False


async def address_of(conn: Conn, resident_id: str) -> tuple[str | None, str | None]:
    """The phone, or the e-mail address, behind a resident id (from the sessions its codes opened): (phone, None),
    (None, e-mail) or (None, None)."""
    row = await conn.fetchrow(
        """SELECT phone_norm, email_norm FROM resident_sessions WHERE resident_id = $1
            ORDER BY created_at DESC LIMIT 1""", resident_id)
    return (row["phone_norm"], row["email_norm"]) if row else (None, None)


async def phone_of(conn: Conn, resident_id: str) -> str | None:
    """The phone behind a resident id (None for one who proved an e-mail)."""
    return (await address_of(conn, resident_id))[0]


async def usable(conn: Conn, digest: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT 1 FROM credentials WHERE token_sha256 = $1 AND registry_offset IS NOT NULL AND revoked_at IS NULL",
        digest))


async def cases_of_phone(conn: Conn, phone_norm: str, limit: int = 50) -> list[dict[str, Any]]:
    """The cases this phone reported or follows, newest first, with their resident-facing status."""
    rows = await conn.fetch(
        """SELECT s.case_id, s.case_no, s.state, s.followed_case_id, s.followed_case_no, s.changed_at, k.created_at
             FROM (SELECT case_id, max(created_at) AS created_at
                     FROM (SELECT case_id, created_at FROM contacts WHERE phone_norm = $1
                           UNION ALL SELECT follower_case_id, created_at FROM followers WHERE phone_norm = $1) u
                    GROUP BY case_id) k  -- a case both reported and followed by the phone is listed once
             JOIN case_status s ON s.case_id = k.case_id
            ORDER BY k.created_at DESC LIMIT $2""",
        phone_norm, limit)
    return [dict(r) for r in rows]


async def cases_of_email(conn: Conn, email_norm: str, limit: int = 50) -> list[dict[str, Any]]:
    """The cases reported with this e-mail address (as given, compared trimmed and in lower case), newest first.
    Never by phone: an e-mail-only contact's phone is empty, and so would match every other one's."""
    if not email_norm:
        return []
    rows = await conn.fetch(
        """SELECT s.case_id, s.case_no, s.state, s.followed_case_id, s.followed_case_no, s.changed_at, k.created_at
             FROM contacts k JOIN case_status s ON s.case_id = k.case_id
            WHERE lower(btrim(k.email)) = $1 AND k.email IS NOT NULL
            ORDER BY k.created_at DESC LIMIT $2""",
        email_norm, limit)
    return [dict(r) for r in rows]


async def survey_by_id(conn: Conn, survey_id: str) -> asyncpg.Record | None:
    try:
        return await conn.fetchrow(
            """SELECT survey_id::text AS survey_id, case_id, case_no, opened_at, closes_at, answered_at, verdict
                 FROM surveys WHERE survey_id = $1::uuid""", survey_id)
    except asyncpg.DataError:  # not a uuid: no such survey
        return None

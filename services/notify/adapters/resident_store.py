"""SQL of residents on the web: one-time codes, wrong tries, sessions, and a resident's own cases."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

Conn = asyncpg.Connection | asyncpg.Pool


async def codes_asked(conn: Conn, *, phone_norm: str, client_ip: str, since: datetime) -> tuple[int, int]:
    """How many codes this phone, and this client address, asked for since `since`."""
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE phone_norm = $1) AS by_phone, count(*) FILTER (WHERE client_ip = $2) AS by_ip
             FROM resident_codes WHERE created_at > $3 AND (phone_norm = $1 OR client_ip = $2)""",
        phone_norm, client_ip, since)
    return row["by_phone"], row["by_ip"]


async def add_code(conn: Conn, *, phone_norm: str, code_hash: str, client_ip: str, expires_at: datetime,
                   forget_before: datetime) -> None:
    """A new code for the phone; every earlier code of it is void (only the latest SMS counts)."""
    await conn.execute("DELETE FROM resident_codes WHERE created_at < $1", forget_before)
    await conn.execute("UPDATE resident_codes SET used_at = now() WHERE phone_norm = $1 AND used_at IS NULL",
                       phone_norm)
    await conn.execute(
        "INSERT INTO resident_codes (phone_norm, code_hash, client_ip, expires_at) VALUES ($1, $2, $3, $4)",
        phone_norm, code_hash, client_ip, expires_at)


async def live_code_for_update(conn: asyncpg.Connection, phone_norm: str, at: datetime,
                               max_tries: int) -> asyncpg.Record | None:
    """The phone's latest code if it is unused, unexpired and not voided by wrong tries (locked)."""
    return await conn.fetchrow(
        """SELECT id, code_hash FROM resident_codes
            WHERE phone_norm = $1 AND used_at IS NULL AND expires_at > $2 AND wrong_tries < $3
            ORDER BY created_at DESC LIMIT 1 FOR UPDATE""",
        phone_norm, at, max_tries)


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


async def add_session(conn: asyncpg.Connection, *, digest: str, resident_id: str, phone_norm: str,
                      expires_at: datetime) -> None:
    # Which phone a session stood for is personal data: kept while it may matter (a week past its end), no longer.
    await conn.execute("DELETE FROM resident_sessions WHERE expires_at < now() - interval '7 days'")
    await conn.execute(
        "INSERT INTO resident_sessions (token_sha256, resident_id, phone_norm, expires_at) VALUES ($1, $2, $3, $4)",
        digest, resident_id, phone_norm, expires_at)


async def session(conn: Conn, digest: str) -> asyncpg.Record | None:
    """A live resident session (not ended, not expired, and still accepted by the registry)."""
    return await conn.fetchrow(
        """SELECT s.resident_id, s.phone_norm, s.expires_at FROM resident_sessions s
             JOIN credentials c ON c.token_sha256 = s.token_sha256
            WHERE s.token_sha256 = $1 AND s.ended_at IS NULL AND s.expires_at > now()
              AND c.revoked_at IS NULL AND c.role = 'resident'""",
        digest)


async def end_session(conn: asyncpg.Connection, digest: str) -> bool:
    return await conn.fetchval(
        "UPDATE resident_sessions SET ended_at = now() WHERE token_sha256 = $1 AND ended_at IS NULL RETURNING true",
        digest) or False


async def phone_of(conn: Conn, resident_id: str) -> str | None:
    """The phone behind a resident id (from the sessions its codes opened)."""
    return await conn.fetchval(
        "SELECT phone_norm FROM resident_sessions WHERE resident_id = $1 ORDER BY created_at DESC LIMIT 1", resident_id)


async def usable(conn: Conn, digest: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT 1 FROM credentials WHERE token_sha256 = $1 AND registry_offset IS NOT NULL AND revoked_at IS NULL",
        digest))


async def cases_of_phone(conn: Conn, phone_norm: str, limit: int = 50) -> list[dict[str, Any]]:
    """The cases this phone reported or follows, newest first, with their resident-facing status."""
    rows = await conn.fetch(
        """SELECT s.case_id, s.case_no, s.state, s.followed_case_id, s.followed_case_no, s.changed_at, k.created_at
             FROM (SELECT case_id, created_at FROM contacts WHERE phone_norm = $1
                   UNION SELECT follower_case_id, created_at FROM followers WHERE phone_norm = $1) k
             JOIN case_status s ON s.case_id = k.case_id
            ORDER BY k.created_at DESC LIMIT $2""",
        phone_norm, limit)
    return [dict(r) for r in rows]


async def survey_by_id(conn: Conn, survey_id: str) -> asyncpg.Record | None:
    try:
        return await conn.fetchrow(
            """SELECT survey_id::text AS survey_id, case_id, case_no, opened_at, closes_at, answered_at, verdict
                 FROM surveys WHERE survey_id = $1::uuid""", survey_id)
    except asyncpg.DataError:  # not a uuid: no such survey
        return None

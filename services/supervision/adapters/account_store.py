"""SQL for accounts, their sessions and the sign-in guards (migration 010_accounts.sql)."""
from __future__ import annotations

from datetime import datetime

import asyncpg

from services.supervision.domain.accounts import Guard

ACCOUNT_COLUMNS = "username, display_name, kind, role, owner_code, worker_id, demo, disabled_at, created_at, updated_at"


async def account(conn: asyncpg.Connection, username: str) -> asyncpg.Record | None:
    """The account with its password hash, or None."""
    return await conn.fetchrow(f"SELECT {ACCOUNT_COLUMNS}, password_hash FROM accounts WHERE username = $1", username)


async def accounts(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every account (no hashes), by username, with its open sessions and whether its username is locked now."""
    return await conn.fetch(
        f"""SELECT {', '.join('a.' + c for c in ACCOUNT_COLUMNS.split(', '))},
                   (SELECT count(*) FROM sessions s WHERE s.username = a.username AND s.ended_at IS NULL
                                                     AND s.expires_at > now()) AS open_sessions,
                   (SELECT g.locked_until FROM sign_in_guards g WHERE g.scope = 'username' AND g.key = a.username
                                                               AND g.locked_until > now()) AS locked_until
            FROM accounts a ORDER BY a.username""")


async def insert_account(conn: asyncpg.Connection, *, username: str, display_name: str, kind: str, role: str,
                         owner_code: str | None, worker_id: str | None, password_hash: str, demo: bool,
                         replace: bool = False) -> bool:
    """A new account; False if the username is taken (with replace: the demo seed, which resets it instead)."""
    conflict = ("""DO UPDATE SET display_name = EXCLUDED.display_name, kind = EXCLUDED.kind, role = EXCLUDED.role,
                   owner_code = EXCLUDED.owner_code, worker_id = EXCLUDED.worker_id,
                   password_hash = EXCLUDED.password_hash, demo = EXCLUDED.demo, disabled_at = NULL, updated_at = now()
                   WHERE accounts.demo""" if replace else "DO NOTHING")
    done = await conn.fetchval(
        f"""INSERT INTO accounts (username, display_name, kind, role, owner_code, worker_id, password_hash, demo)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (username) {conflict} RETURNING 1""",
        username, display_name, kind, role, owner_code, worker_id, password_hash, demo)
    return done is not None


async def set_password(conn: asyncpg.Connection, username: str, password_hash: str) -> bool:
    done = await conn.fetchval("UPDATE accounts SET password_hash = $2, updated_at = now() WHERE username = $1 "
                               "RETURNING 1", username, password_hash)
    return done is not None


async def set_disabled(conn: asyncpg.Connection, username: str, disabled: bool) -> bool:
    done = await conn.fetchval(
        """UPDATE accounts SET disabled_at = CASE WHEN $2 THEN coalesce(disabled_at, now()) END, updated_at = now()
           WHERE username = $1 RETURNING 1""", username, disabled)
    return done is not None


async def insert_session(conn: asyncpg.Connection, digest: str, username: str, expires_at: datetime,
                         address: str) -> None:
    await conn.execute("INSERT INTO sessions (session_sha256, username, expires_at, client_address) "
                       "VALUES ($1, $2, $3, $4)", digest, username, expires_at, address)


async def session(conn: asyncpg.Connection, digest: str, at: datetime) -> asyncpg.Record | None:
    """The open session with this hash, unexpired at `at` (the service's clock), and its (enabled) account, or None."""
    return await conn.fetchrow(
        f"""SELECT s.expires_at, {', '.join('a.' + c for c in ACCOUNT_COLUMNS.split(', '))}
            FROM sessions s JOIN accounts a USING (username)
            WHERE s.session_sha256 = $1 AND s.ended_at IS NULL AND s.expires_at > $2 AND a.disabled_at IS NULL""",
        digest, at)


async def end_session(conn: asyncpg.Connection, digest: str, reason: str) -> bool:
    done = await conn.fetchval("UPDATE sessions SET ended_at = now(), end_reason = $2 "
                               "WHERE session_sha256 = $1 AND ended_at IS NULL RETURNING 1", digest, reason)
    return done is not None


async def end_sessions_of(conn: asyncpg.Connection, username: str, reason: str) -> list[str]:
    """End every open session of an account; the hashes of those ended (to revoke them in the registry)."""
    rows = await conn.fetch("UPDATE sessions SET ended_at = now(), end_reason = $2 "
                            "WHERE username = $1 AND ended_at IS NULL AND expires_at > now() "
                            "RETURNING session_sha256", username, reason)
    return [r["session_sha256"] for r in rows]


async def guard_for_update(conn: asyncpg.Connection, scope: str, key: str) -> Guard:
    """The guard of a username or address, locked for this transaction (created empty if none)."""
    await conn.execute("INSERT INTO sign_in_guards (scope, key) VALUES ($1, $2) ON CONFLICT DO NOTHING", scope, key)
    row = await conn.fetchrow("SELECT attempts, window_started, locked_until FROM sign_in_guards "
                              "WHERE scope = $1 AND key = $2 FOR UPDATE", scope, key)
    return Guard(row["attempts"], row["window_started"], row["locked_until"])


async def save_guard(conn: asyncpg.Connection, scope: str, key: str, guard: Guard) -> None:
    await conn.execute("UPDATE sign_in_guards SET attempts = $3, window_started = $4, locked_until = $5 "
                       "WHERE scope = $1 AND key = $2", scope, key, guard.attempts, guard.window_started,
                       guard.locked_until)


async def forgive(conn: asyncpg.Connection, username: str, address: str) -> None:
    """A successful sign-in: the username starts afresh; the address gets back the attempt it was counted (only that:
    an attacker who owns one account must not wipe the count of their guesses at the others)."""
    await conn.execute("DELETE FROM sign_in_guards WHERE scope = 'username' AND key = $1", username)
    await conn.execute("UPDATE sign_in_guards SET attempts = greatest(attempts - 1, 0) "
                       "WHERE scope = 'address' AND key = $1 AND locked_until IS NULL", address)


async def unlock(conn: asyncpg.Connection, username: str) -> None:
    """An administrator set a new password: the username's lock is lifted."""
    await conn.execute("DELETE FROM sign_in_guards WHERE scope = 'username' AND key = $1", username)


async def prune_guards(conn: asyncpg.Connection, older_than: datetime) -> None:
    """Forget guards whose window and lock are long over (random usernames must not pile up)."""
    await conn.execute("DELETE FROM sign_in_guards WHERE window_started < $1 "
                       "AND (locked_until IS NULL OR locked_until < $1)", older_than)


async def prune_sessions(conn: asyncpg.Connection, older_than: datetime) -> None:
    """Forget sessions expired long ago (kept a while as a record of who signed in when; an ended one expired too,
    at most a session's length after)."""
    await conn.execute("DELETE FROM sessions WHERE expires_at < $1", older_than)

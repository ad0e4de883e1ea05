"""SQL for the street's time rules: the current configuration (one row, versioned) and its history.

jsonb travels as Python values (shared/db.py sets the codec)."""
from __future__ import annotations

from typing import Any

import asyncpg


async def current(conn: asyncpg.Connection) -> asyncpg.Record | None:
    """(version, config, source, updated_by, updated_at) of the current configuration, or None before the seed."""
    return await conn.fetchrow("SELECT version, config, source, updated_by, updated_at FROM street_config")


async def version(conn: asyncpg.Connection) -> int:
    """The current version (0 before the seed): cheap, asked once per poll."""
    return await conn.fetchval("SELECT version FROM street_config") or 0


async def seed(conn: asyncpg.Connection, config: dict[str, Any], source: str) -> None:
    """The file's configuration, if the table has none yet (concurrent starts: the first one wins)."""
    inserted = await conn.fetchval(
        """INSERT INTO street_config (version, config, source, updated_by) VALUES (1, $1::jsonb, $2, 'seed')
           ON CONFLICT (id) DO NOTHING RETURNING version""",
        config, source,
    )
    if inserted:
        await conn.execute(
            """INSERT INTO street_config_history (version, changed_by, old_config, new_config, note)
               VALUES (1, 'seed', NULL, $1::jsonb, $2)""",
            config, f"seeded from {source}",
        )


async def replace(conn: asyncpg.Connection, config: dict[str, Any], by: str, note: str | None) -> tuple[int, Any]:
    """A new current configuration and its history row, in the caller's transaction; (new version, old config)."""
    row = await conn.fetchrow("SELECT version, config FROM street_config FOR UPDATE")
    old_version, old = (row["version"], row["config"]) if row else (0, None)
    new_version = old_version + 1
    await conn.execute(
        """INSERT INTO street_config (version, config, source, updated_by, updated_at)
           VALUES ($1, $2::jsonb, 'admin', $3, now())
           ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, config = EXCLUDED.config,
               source = EXCLUDED.source, updated_by = EXCLUDED.updated_by, updated_at = now()""",
        new_version, config, by,
    )
    await conn.execute(
        """INSERT INTO street_config_history (version, changed_by, old_config, new_config, note)
           VALUES ($1, $2, $3::jsonb, $4::jsonb, $5)""",
        new_version, by, old, config, note,
    )
    return new_version, old


async def history(conn: asyncpg.Connection, limit: int = 50) -> list[dict[str, Any]]:
    """The latest changes, newest first."""
    rows = await conn.fetch(
        """SELECT version, changed_by, changed_at, old_config, new_config, note FROM street_config_history
           ORDER BY seq DESC LIMIT $1""",
        limit,
    )
    return [dict(r) for r in rows]

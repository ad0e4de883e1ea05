"""The reply templates: the default files in services/notify/templates/*.txt.j2 (kind = file name) and the
street's edited texts in notify's reply_templates table (with their history)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg

from services.notify.domain.replies import ReplyTemplates

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
SUFFIX = ".txt.j2"


def load_template_sources(folder: Path = TEMPLATES_DIR) -> dict[str, str]:
    """kind → Jinja2 source, e.g. {'acknowledgement': '【{{ signature }}】…'}."""
    return {path.name[: -len(SUFFIX)]: path.read_text(encoding="utf-8") for path in sorted(folder.glob(f"*{SUFFIX}"))}


# The history's last id: the edited texts' version (a scalar subquery, to ride along with other reads).
LAST_EDIT = "SELECT coalesce(max(id), 0) FROM reply_template_history"


class EditedTemplates:
    """Keeps a ReplyTemplates in step with the edited texts: one cheap read per use (the history's last id), a
    reload only when it moved — so an edit made through any notify instance is used by every one."""

    def __init__(self, templates: ReplyTemplates):
        self.templates = templates
        self._seen = 0

    async def refresh(self, conn: asyncpg.Connection) -> ReplyTemplates:
        return await self.at(conn, await conn.fetchval(LAST_EDIT))

    async def at(self, conn: asyncpg.Connection, last: int) -> ReplyTemplates:
        """The texts as of the history's last id `last` (read by the caller, in a statement of its own choosing)."""
        if last != self._seen:
            rows = await conn.fetch("SELECT name, source FROM reply_templates")
            self.templates.use({r["name"]: r["source"] for r in rows})
            self._seen = last
        return self.templates


async def edited(conn: asyncpg.Connection) -> dict[str, asyncpg.Record]:
    """name → the edited row (source, version, updated_by, updated_at)."""
    return {r["name"]: r for r in await conn.fetch("SELECT * FROM reply_templates")}


async def save(conn: asyncpg.Connection, *, name: str, source: str, previous: str, changed_by: str,
               note: str | None) -> int:
    """Store a new text and its history row in the caller's transaction; the new version."""
    version = await conn.fetchval(
        """INSERT INTO reply_templates (name, source, version, updated_by) VALUES ($1, $2, 1, $3)
           ON CONFLICT (name) DO UPDATE SET source = excluded.source, version = reply_templates.version + 1,
               updated_by = excluded.updated_by, updated_at = now()
           RETURNING version""",
        name, source, changed_by,
    )
    await conn.execute(
        """INSERT INTO reply_template_history (name, version, previous_source, source, changed_by, note)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        name, version, previous, source, changed_by, note,
    )
    return version


async def history(conn: asyncpg.Connection, name: str, limit: int = 50) -> list[dict[str, Any]]:
    """The changes of one template, newest first."""
    rows = await conn.fetch(
        """SELECT version, previous_source, source, changed_by, changed_at, note FROM reply_template_history
            WHERE name = $1 ORDER BY version DESC LIMIT $2""", name, limit)
    return [dict(r) for r in rows]

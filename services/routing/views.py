"""Read-only views of routing's data for the HTTP API (no unit of work: nothing is written)."""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import asyncpg
from shapely.geometry import shape

from shared.street import Grid, GridLocator, Street
from shared.topics import Topics


async def categories(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    """Every category with its owner, limit and urgency."""
    rows = await pool.fetch(
        "SELECT code, grp, name, owner, time_limit, limit_unit, urgency FROM categories ORDER BY code"
    )
    return [
        {
            "code": r["code"], "group": r["grp"], "name": r["name"], "owner": r["owner"],
            "limit": {"value": r["time_limit"], "unit": r["limit_unit"]}, "urgency": r["urgency"],
        }
        for r in rows
    ]


async def owners(pool: asyncpg.Pool, topics: Topics) -> list[dict[str, Any]]:
    """Everyone who receives tasks: departments (incl. the command center) and communities."""
    rows = await pool.fetch(
        "SELECT code, name, kind FROM departments "
        "UNION ALL SELECT code, name, 'community' FROM grids WHERE level = 'community' ORDER BY kind, code"
    )
    return [{"code": r["code"], "name": r["name"], "kind": r["kind"], "task_topic": topics.tasks(r["code"])} for r in rows]


@dataclass(frozen=True)
class GridIndex:
    """The grids of the loaded street, indexed for point lookups."""

    load_id: str
    grids: dict[str, Grid]
    locator: GridLocator

    def locate(self, lon: float, lat: float) -> dict[str, Any] | None:
        """The unit grid, foundation grid and community at a point, with their names; None outside."""
        unit_code = self.locator.unit_grid_at(lon, lat)
        if unit_code is None:
            return None
        unit = self.grids[unit_code]
        chain = [unit]
        while chain[-1].level != "community" and chain[-1].parent in self.grids:
            chain.append(self.grids[chain[-1].parent])
        by_level = {g.level: g for g in chain}
        foundation, community = by_level.get("foundation"), by_level.get("community")
        return {
            "unit_grid": unit.code,
            "foundation_grid": foundation.code if foundation else None,
            "community": community.code if community else None,
            "names": {
                "unit_grid": unit.name,
                "foundation_grid": foundation.name if foundation else None,
                "community": community.name if community else None,
            },
        }


class GridIndexCache:
    """The grid index, rebuilt when a new street load (another load_id) is seen in the database."""

    def __init__(self) -> None:
        self._index: GridIndex | None = None
        self._lock = asyncio.Lock()

    async def get(self, pool: asyncpg.Pool) -> GridIndex | None:
        """The current index, or None when no street is loaded."""
        load_id = await pool.fetchval("SELECT load_id FROM street LIMIT 1")
        if load_id is None:
            return None
        if self._index is not None and self._index.load_id == load_id:
            return self._index
        async with self._lock:
            if self._index is None or self._index.load_id != load_id:
                self._index = await _build(pool, load_id)
            return self._index


async def _build(pool: asyncpg.Pool, load_id: str) -> GridIndex:
    rows = await pool.fetch("SELECT code, name, level, parent, households, geometry FROM grids")
    grids = {
        r["code"]: Grid(r["code"], r["name"], r["level"], r["parent"] or "", r["households"], shape(json.loads(r["geometry"])))
        for r in rows
    }
    # GridLocator reads only the grids (and the addresses, which locating a point does not need).
    street = Street(code="", name="", grids=grids, addresses=[], categories={}, departments={}, people=[])
    return GridIndex(load_id, grids, GridLocator(street))

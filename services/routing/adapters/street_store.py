"""The street's reference tables in routing's schema: replaced as a whole, read per case."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import asyncpg
from shapely.geometry import mapping

from shared.street import Street
from services.routing.domain.model import COMMUNITY, CategoryRule, Limit, Owner, RoutingRules, find_command_center

# Tables in the order they can be emptied (children before the grids they reference).
REFERENCE_TABLES = ("people", "addresses", "grids", "categories", "departments", "calendar_days", "street")


@dataclass(frozen=True)
class LoadSummary:
    """What a street load wrote."""

    street: str
    communities: int
    foundations: int
    units: int
    addresses: int
    categories: int
    departments: int
    people: int

    def line(self) -> str:
        """The one-line summary printed after a load."""
        return (
            f"{self.street}: {self.communities} communities, {self.foundations} foundation, {self.units} unit grids, "
            f"{self.addresses} addresses, {self.categories} categories, {self.departments} departments"
        )


async def street_loaded(conn: asyncpg.Connection) -> bool:
    """Whether a street is loaded (the reference tables are not empty)."""
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM street)"))


async def replace_street(
    conn: asyncpg.Connection, street: Street, source_dir: Path, schema: str, *, only_if_empty: bool = False
) -> bool:
    """Replace every reference table with this street's data in one transaction; False if
    only_if_empty and a street was there already (nothing written)."""
    async with conn.transaction():
        # Two loaders (a CLI and a starting service) must not interleave their deletes and inserts.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"street-load:{schema}")
        if only_if_empty and await street_loaded(conn):
            return False
        await _replace(conn, street, source_dir)
    return True


async def _replace(conn: asyncpg.Connection, street: Street, source_dir: Path) -> None:
    for table in REFERENCE_TABLES:
        await conn.execute(f"DELETE FROM {table}")
    await conn.execute(
        "INSERT INTO street(code, name, source_dir, load_id) VALUES ($1, $2, $3, $4)",
        street.code, street.name, str(source_dir), uuid.uuid4().hex,
    )
    await conn.executemany(
        "INSERT INTO grids(code, name, level, parent, community, households, geometry) VALUES ($1,$2,$3,$4,$5,$6,$7)",
        [
            (g.code, g.name, g.level, g.parent or None, street.community_of(g.code).code, g.households,
             json.dumps(mapping(g.geometry)))
            for g in street.grids.values()
        ],
    )
    await conn.executemany(
        "INSERT INTO addresses(address, estate, building, lon, lat, unit_grid) VALUES ($1,$2,$3,$4,$5,$6)",
        [(a.address, a.estate, a.building, a.lon, a.lat, a.unit_grid) for a in street.addresses],
    )
    await conn.executemany(
        "INSERT INTO departments(code, name, kind, note) VALUES ($1,$2,$3,$4)",
        [(d.code, d.name, d.kind, d.note) for d in street.departments.values()],
    )
    await conn.executemany(
        "INSERT INTO categories(code, grp, name, owner, time_limit, limit_unit, urgency, note) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
        [(c.code, c.group, c.name, c.owner, c.time_limit, c.limit_unit, c.urgency, c.note) for c in street.categories.values()],
    )
    await conn.executemany(
        "INSERT INTO people(person_id, name, role, grid_code, phone, device_id) VALUES ($1,$2,$3,$4,$5,$6)",
        [(p.person_id, p.name, p.role, p.grid_code, p.phone, p.device_id) for p in street.people],
    )
    await conn.executemany(
        "INSERT INTO calendar_days(day, workday) VALUES ($1, $2)", list(street.calendar_overrides.items())
    )


def summarise(street: Street) -> LoadSummary:
    """Counts of what a street holds."""
    return LoadSummary(
        street=street.name or street.code,
        communities=len(street.level("community")),
        foundations=len(street.level("foundation")),
        units=len(street.level("unit")),
        addresses=len(street.addresses),
        categories=len(street.categories),
        departments=len(street.departments),
        people=len(street.people),
    )


async def all_rules(conn: asyncpg.Connection) -> RoutingRules:
    """The whole street's routing rules: every category, every unit grid's community, every owner."""
    owners = {r["code"]: Owner(r["code"], r["name"], r["kind"]) for r in await conn.fetch("SELECT code, name, kind FROM departments")}
    command_center = find_command_center(owners.values())
    grids = await conn.fetch("SELECT code, name, level, community FROM grids WHERE level IN ('unit', 'community')")
    owners.update({g["code"]: Owner(g["code"], g["name"], COMMUNITY) for g in grids if g["level"] == "community"})
    categories = {
        c["code"]: CategoryRule(c["code"], c["name"], c["owner"], Limit(c["time_limit"], c["limit_unit"]), c["urgency"])
        for c in await conn.fetch("SELECT code, name, owner, time_limit, limit_unit, urgency FROM categories")
    }
    communities = {g["code"]: g["community"] for g in grids if g["level"] == "unit"}
    return RoutingRules(categories, communities, owners, command_center)


class RulesCache:
    """The rules and calendar in memory, reloaded when another street load (load_id) is committed.

    Dispatch reads one value per case instead of the reference tables; a new load-street is seen
    by the next case, in the same transaction that dispatches it.
    """

    def __init__(self) -> None:
        self._load_id: str | None = None
        self._rules: RoutingRules | None = None
        self._overrides: dict[date, bool] = {}

    async def get(self, conn: asyncpg.Connection) -> tuple[RoutingRules, dict[date, bool]]:
        """The current rules and calendar override days."""
        load_id = await conn.fetchval("SELECT load_id FROM street LIMIT 1")
        if self._rules is None or load_id != self._load_id:
            self._rules, self._overrides = await all_rules(conn), await calendar_overrides(conn)
            self._load_id = load_id
        return self._rules, self._overrides


async def calendar_overrides(conn: asyncpg.Connection) -> dict[date, bool]:
    """The street's override days (worked or not) for the work calendar."""
    return {r["day"]: r["workday"] for r in await conn.fetch("SELECT day, workday FROM calendar_days")}

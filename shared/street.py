"""A street's configuration files, read into typed records, and a locator for points and addresses.

Formats (see ../shared/data/README.md): `<name>-grids.geojson`, `<name>-addresses.csv`,
`<name>-categories.csv`, `<name>-departments.csv`, `<name>-people.csv` in one folder.
This is reading and indexing only; what to do with a grid is each service's business.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Iterable

from shapely import STRtree
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

LEVELS = ("community", "foundation", "unit")
LIMIT_UNITS = ("work_hours", "work_days", "hours")
PRIORITIES = ("low", "normal", "high", "urgent")


class StreetDataError(ValueError):
    """A street file is missing or does not have the expected format; the message says where."""


@dataclass(frozen=True)
class Grid:
    """A grid at one of the three levels."""

    code: str
    name: str
    level: str
    parent: str
    households: int | None
    geometry: BaseGeometry


@dataclass(frozen=True)
class Address:
    """A building of the address registry, with its point and unit grid."""

    address: str
    estate: str
    building: str
    lon: float
    lat: float
    unit_grid: str


@dataclass(frozen=True)
class Category:
    """A case category, its owner (a department code or 'community') and its time limit."""

    code: str
    group: str
    name: str
    owner: str
    time_limit: float
    limit_unit: str
    urgency: str
    note: str


@dataclass(frozen=True)
class Department:
    """The command center, a department or an outside utility that receives tasks."""

    code: str
    name: str
    kind: str
    note: str


@dataclass(frozen=True)
class Person:
    """Who is responsible for a grid (grid head, coordinator with a terminal)."""

    person_id: str
    name: str
    role: str
    grid_code: str
    phone: str
    device_id: str | None


@dataclass
class Street:
    """Everything read from one street folder."""

    code: str
    name: str
    grids: dict[str, Grid]
    addresses: list[Address]
    categories: dict[str, Category]
    departments: dict[str, Department]
    people: list[Person]
    # Optional `<name>-calendar.csv` (date,workday,note): days the holiday source does not know yet.
    calendar_overrides: dict[date, bool] = field(default_factory=dict)

    def level(self, level: str) -> list[Grid]:
        """The grids of one level."""
        return [g for g in self.grids.values() if g.level == level]

    def coordinator_grids(self) -> dict[str, tuple[str, ...]]:
        """Each coordinator's (网格员: a person of a unit grid with a terminal, or of that role) unit grids, by
        person id (the worker_id of their terminal and their account). One person may hold several grids."""
        grids: dict[str, set[str]] = {}
        for person in self.people:
            grid = self.grids.get(person.grid_code)
            if grid is not None and grid.level == "unit" and (person.device_id or person.role == "网格员"):
                grids.setdefault(person.person_id, set()).add(grid.code)
        return {worker: tuple(sorted(codes)) for worker, codes in grids.items()}

    def community_of(self, grid_code: str) -> Grid:
        """The community (基本网格) a grid lies in, following parents upward."""
        grid = self.grids[grid_code]
        while grid.level != "community":
            grid = self.grids[grid.parent]
        return grid


def _one(folder: Path, suffix: str) -> Path:
    found = sorted(folder.glob(f"*-{suffix}"))
    if len(found) != 1:
        raise StreetDataError(f"{folder}: expected exactly one *-{suffix} file, found {len(found)}")
    return found[0]


def _rows(path: Path, required: Iterable[str]) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = set(required) - set(reader.fieldnames or [])
        if missing:
            raise StreetDataError(f"{path.name}: missing columns {', '.join(sorted(missing))}")
        return [{k: (v or "").strip() for k, v in row.items()} for row in reader]


def load_street(folder: Path | str) -> Street:
    """Read and check a street folder; raises StreetDataError naming the file and row at fault."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StreetDataError(f"{folder}: not a folder (set WANGGE_STREET_DIR to the street's data folder)")
    geo_path = _one(folder, "grids.geojson")
    try:
        geo = json.loads(geo_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise StreetDataError(f"{geo_path.name}: not JSON: {exc}") from None
    street_props = (geo.get("properties") or {}).get("street") or {}
    grids: dict[str, Grid] = {}
    for i, feature in enumerate(geo.get("features", [])):
        props = feature.get("properties") or {}
        try:
            grid = Grid(
                code=str(props["code"]),
                name=str(props["name"]),
                level=str(props["level"]),
                parent=str(props.get("parent") or ""),
                households=int(props["households"]) if props.get("households") is not None else None,
                geometry=shape(feature["geometry"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StreetDataError(f"{geo_path.name}: feature {i}: {exc!r}") from None
        if grid.level not in LEVELS:
            raise StreetDataError(f"{geo_path.name}: grid {grid.code}: level {grid.level!r} not one of {LEVELS}")
        grids[grid.code] = grid
    for grid in grids.values():
        if grid.level != "community" and grid.parent not in grids:
            raise StreetDataError(f"{geo_path.name}: grid {grid.code}: parent {grid.parent!r} is not a grid")
    if not any(g.level == "unit" for g in grids.values()):
        raise StreetDataError(f"{geo_path.name}: no unit grids")

    addresses = []
    addr_path = _one(folder, "addresses.csv")
    for n, row in enumerate(_rows(addr_path, ["address", "estate", "building", "lon", "lat", "unit_grid"]), 2):
        if row["unit_grid"] not in grids:
            raise StreetDataError(f"{addr_path.name}: line {n}: unit grid {row['unit_grid']} is not a grid")
        addresses.append(Address(row["address"], row["estate"], row["building"],
                                 _number(row["lon"], addr_path, n, "lon"), _number(row["lat"], addr_path, n, "lat"),
                                 row["unit_grid"]))
    _unique(addr_path, "address", [a.address for a in addresses])

    departments = {}
    for row in _rows(_one(folder, "departments.csv"), ["code", "name", "kind"]):
        departments[row["code"]] = Department(row["code"], row["name"], row["kind"], row.get("note", ""))

    categories = {}
    cat_path = _one(folder, "categories.csv")
    for n, row in enumerate(_rows(cat_path, ["code", "group", "name", "owner", "time_limit", "limit_unit", "urgency"]), 2):
        if row["owner"] != "community" and row["owner"] not in departments:
            raise StreetDataError(f"{cat_path.name}: line {n}: owner {row['owner']!r} is not a department or 'community'")
        if row["limit_unit"] not in LIMIT_UNITS:
            raise StreetDataError(f"{cat_path.name}: line {n}: limit_unit {row['limit_unit']!r} not one of {LIMIT_UNITS}")
        if row["urgency"] not in PRIORITIES:
            raise StreetDataError(f"{cat_path.name}: line {n}: urgency {row['urgency']!r} not one of {PRIORITIES}")
        categories[row["code"]] = Category(
            row["code"], row["group"], row["name"], row["owner"], _number(row["time_limit"], cat_path, n, "time_limit"),
            row["limit_unit"], row["urgency"], row.get("note", ""),
        )

    people = []
    people_path = _one(folder, "people.csv")
    for n, r in enumerate(_rows(people_path, ["person_id", "name", "role", "grid_code", "phone"]), 2):
        if r["grid_code"] not in grids:
            raise StreetDataError(f"{people_path.name}: line {n}: grid {r['grid_code']} is not a grid")
        people.append(Person(r["person_id"], r["name"], r["role"], r["grid_code"], r["phone"], r.get("device_id") or None))
    _unique(people_path, "person_id", [p.person_id for p in people])
    overrides = read_calendar_overrides(folder)
    return Street(
        calendar_overrides=overrides,
        code=str(street_props.get("code", "")),
        name=str(street_props.get("name", geo.get("name", ""))),
        grids=grids,
        addresses=addresses,
        categories=categories,
        departments=departments,
        people=people,
    )


def read_calendar_overrides(folder: Path) -> dict[date, bool]:
    """The optional `<name>-calendar.csv` of a folder: `date,workday,note` rows (YYYY-MM-DD; workday 1/0,
    true/false, yes/no); lines starting with `#` are comments. {} when the folder has none."""
    overrides: dict[date, bool] = {}
    for path in sorted(Path(folder).glob("*-calendar.csv"))[:1]:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            lines = [(n, line) for n, line in enumerate(fh, 1) if line.strip() and not line.lstrip().startswith("#")]
        reader = csv.DictReader([line for _, line in lines])
        missing = {"date", "workday"} - set(reader.fieldnames or [])
        if missing:
            raise StreetDataError(f"{path.name}: missing columns {', '.join(sorted(missing))}")
        for (n, _), row in zip(lines[1:], reader):
            text, flag = (row.get("date") or "").strip(), (row.get("workday") or "").strip().lower()
            try:
                day = date.fromisoformat(text)
            except ValueError:
                raise StreetDataError(f"{path.name}: line {n}: date {text!r} is not YYYY-MM-DD") from None
            if flag not in ("1", "0", "true", "false", "yes", "no", "y", "n"):
                raise StreetDataError(f"{path.name}: line {n}: workday {flag!r} is not 1/0, true/false or yes/no")
            overrides[day] = flag in ("1", "true", "yes", "y")
    return overrides


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class DutyLeader:
    """带班领导: the member of the street's leadership on duty, whom an escalation to the leadership reaches."""

    name: str
    phone: str


@dataclass(frozen=True)
class DutyRoster:
    """Who leads on which day: a weekly rota, and single dates ahead of it (a swap, a holiday)."""

    weekly: dict[str, DutyLeader] = field(default_factory=dict)   # mon … sun
    dated: dict[date, DutyLeader] = field(default_factory=dict)

    def on_duty(self, day: date) -> DutyLeader | None:
        """The leader on duty on this street day, or None when the roster leaves the day open."""
        return self.dated.get(day) or self.weekly.get(WEEKDAYS[day.weekday()])


def read_duty_roster(folder: Path) -> DutyRoster:
    """The optional `<name>-duty.csv` of a street's configuration folder: `day,name,phone` rows, day being
    mon…sun or YYYY-MM-DD (that date only, ahead of its weekday); `#` lines are comments. Empty roster when
    the folder has none."""
    roster = DutyRoster()
    for path in sorted(Path(folder).glob("*-duty.csv"))[:1]:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            lines = [(n, line) for n, line in enumerate(fh, 1) if line.strip() and not line.lstrip().startswith("#")]
        reader = csv.DictReader([line for _, line in lines])
        missing = {"day", "name", "phone"} - set(reader.fieldnames or [])
        if missing:
            raise StreetDataError(f"{path.name}: missing columns {', '.join(sorted(missing))}")
        for (n, _), row in zip(lines[1:], reader):
            day, name, phone = ((row.get(k) or "").strip() for k in ("day", "name", "phone"))
            if not name or not phone:
                raise StreetDataError(f"{path.name}: line {n}: a leader on duty needs a name and a phone")
            leader = DutyLeader(name, phone)
            if day.lower() in WEEKDAYS:
                roster.weekly[day.lower()] = leader
                continue
            try:
                roster.dated[date.fromisoformat(day)] = leader
            except ValueError:
                raise StreetDataError(f"{path.name}: line {n}: day {day!r} is not mon…sun nor YYYY-MM-DD") from None
    return roster


def street_name(folder: Path) -> str:
    """The street's file prefix (`wenhualu` of `wenhualu-grids.geojson`), or the folder's name."""
    found = sorted(Path(folder).glob("*-grids.geojson"))
    return found[0].name[: -len("-grids.geojson")] if found else Path(folder).name


def street_config_folder(street_dir: Path, configured: Path | str | None = None) -> Path:
    """Where a street's configuration (`<name>-config.toml`, `<name>-calendar.csv`) is read from: the street
    folder itself if it holds a `*-config.toml`, else `configured` (WANGGE_STREET_CONFIG_DIR), else
    `<repo>/streets/<name>` with <name> the street's file prefix."""
    street_dir = Path(street_dir)
    if any(street_dir.glob("*-config.toml")):
        return street_dir
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parent.parent / "streets" / street_name(street_dir)


def _number(text: str, path: Path, line: int, column: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise StreetDataError(f"{path.name}: line {line}: {column} {text!r} is not a number") from None


def _unique(path: Path, what: str, keys: list[str]) -> None:
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise StreetDataError(f"{path.name}: {what} {key!r} appears twice")
        seen.add(key)


_SPACE = re.compile(r"[\s\u3000,，。.、]+")


def normalise_address(text: str) -> str:
    """An address reduced for matching: no spaces or punctuation, full-width digits made ASCII."""
    return _SPACE.sub("", text).translate(str.maketrans("０１２３４５６７８９", "0123456789"))


class GridLocator:
    """Finds the unit grid of a point, or of an address in the registry."""

    def __init__(self, street: Street):
        self._units = street.level("unit")
        self._tree = STRtree([g.geometry for g in self._units])
        self.outline = unary_union([g.geometry for g in self._units])
        self._addresses = sorted(street.addresses, key=lambda a: -len(a.address))
        self._by_norm = {normalise_address(a.address): a for a in street.addresses}

    def unit_grid_at(self, lon: float, lat: float) -> str | None:
        """The code of the unit grid containing the point (its boundary counts), or None outside the street."""
        point = Point(lon, lat)
        for index in self._tree.query(point, predicate="intersects"):
            return self._units[int(index)].code
        return None

    def find_address(self, text: str) -> Address | None:
        """The registry building a free-text address names: exact, else the longest registry entry it contains,
        else one whose estate and building both appear in it."""
        norm = normalise_address(text)
        if not norm:
            return None
        if norm in self._by_norm:
            return self._by_norm[norm]
        for entry in self._addresses:
            if normalise_address(entry.address) in norm:
                return entry
        for entry in self._addresses:
            if entry.estate and entry.building and entry.estate in norm and normalise_address(entry.building) in norm:
                return entry
        return None

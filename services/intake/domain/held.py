"""Held reports: what the command center may do with a case intake could not accept by itself.

A case is *held* while it is in state ``reported``: it lacks a category (待分类) or a place the
street knows (地址待核实). Operators classify it, locate it, reject it or merge it into an open
case. Once it has both a category and a unit grid it is accepted (立案). Decided without I/O.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Protocol

from shared.contracts.common import Location

HELD = "reported"
Action = Literal["classify", "locate", "reject", "merge"]

# What may happen to a case in each state intake keeps (the rest of the loop belongs to the other services).
ALLOWED: dict[str, frozenset[str]] = {
    HELD: frozenset({"classify", "locate", "reject", "merge"}),
    "accepted": frozenset(),
    "rejected": frozenset(),
    "merged": frozenset(),
}
# Only an open case can take a duplicate; to intake, an accepted case is open.
MERGE_TARGET_STATES = frozenset({"accepted"})

_VERBS = {"classify": "classified (分类)", "locate": "located (定位)", "reject": "rejected (不予受理)",
          "merge": "merged (合并)"}


class Refused(Exception):
    """The command cannot be carried out; the message says why (sent back to the operator)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class UnknownCase(Refused):
    """No case has this number."""


class WrongState(Refused):
    """The case exists but its state does not allow this."""


class Unacceptable(Refused):
    """What the operator sent cannot apply to this street (unknown category, a point outside it …)."""


class Places(Protocol):
    """What locating needs to know about the street's geography."""

    def unit_grid_at(self, lon: float, lat: float) -> str | None: ...


@dataclass(frozen=True)
class HeldCase:
    """What the rules need of a case: its state, category and place."""

    case_no: str
    state: str
    category: str | None
    unit_grid: str | None
    location: Location | None
    address: str | None


def may(state: str, action: Action) -> bool:
    """Whether a case in this state may be classified, located, rejected or merged."""
    return action in ALLOWED.get(state, frozenset())


def ensure_may(case: HeldCase, action: Action) -> None:
    """Raise WrongState unless the case's state allows the action."""
    if not may(case.state, action):
        raise WrongState(
            f"case {case.case_no} is {case.state}: only a held report (state reported) can be {_VERBS[action]} "
            f"(案件当前状态为 {case.state}，不能再操作)"
        )


def hold_reason(category: str | None, unit_grid: str | None) -> str | None:
    """Why a case is still held, or None when it is complete (it has a category and a unit grid)."""
    if unit_grid is None:
        return "address not found in the registry: the command center locates it (地址待核实)"
    if category is None:
        return "no category: the command center classifies it (待分类)"
    return None


def is_complete(case: HeldCase) -> bool:
    """A held case with a category and a unit grid can be accepted now."""
    return hold_reason(case.category, case.unit_grid) is None


def classify(case: HeldCase, category: str, categories: set[str] | frozenset[str]) -> HeldCase:
    """The case with its category; an unknown category code is refused."""
    ensure_may(case, "classify")
    if category not in categories:
        raise Unacceptable(f"unknown category {category!r} (未知类别); known: {', '.join(sorted(categories))}")
    return replace(case, category=category)


def locate_at(case: HeldCase, location: Location, places: Places) -> HeldCase:
    """The case at a point: its unit grid is where the point lies; a point outside the street is refused."""
    ensure_may(case, "locate")
    unit_grid = places.unit_grid_at(location.lon, location.lat)
    if unit_grid is None:
        raise Unacceptable(f"location ({location.lon}, {location.lat}) is outside the street (不在本街道辖区内)")
    return replace(case, unit_grid=unit_grid, location=location)


def locate_in(case: HeldCase, unit_grid: str, unit_grids: set[str] | frozenset[str], places: Places) -> HeldCase:
    """The case in a unit grid named by the operator; the address stays, a point elsewhere is dropped."""
    ensure_may(case, "locate")
    if unit_grid not in unit_grids:
        raise Unacceptable(f"unknown unit grid {unit_grid!r} (未知单元网格): give the code of a unit grid of this street")
    location = case.location
    if location is not None and places.unit_grid_at(location.lon, location.lat) != unit_grid:
        location = None  # the point the case had lies in another grid: the operator's grid wins
    return replace(case, unit_grid=unit_grid, location=location)


def ensure_mergeable(case: HeldCase, into: HeldCase | None, into_case_no: str) -> HeldCase:
    """The open case a held report may follow; refused when it is unknown, the same case, or not open."""
    ensure_may(case, "merge")
    if into_case_no == case.case_no:
        raise Unacceptable(f"case {case.case_no} cannot be merged into itself (不能合并到自身)")
    if into is None:
        raise Unacceptable(f"no case {into_case_no} to merge into (目标案件不存在)")
    if into.state not in MERGE_TARGET_STATES:
        raise WrongState(
            f"case {into.case_no} is {into.state}: a duplicate can only follow an open (accepted) case "
            f"(目标案件状态为 {into.state}，不能合并)"
        )
    return into

"""Dispatching a case again: by hand, after a failed check (rework) or after the resident reopened it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from shared.worktime import WorkCalendar
from services.routing.domain.dispatching import Assignment, DispatchPlan, due_at
from services.routing.domain.model import Limit, Owner, RoutingRules

OPEN, RETURNED, CLOSED = "open", "returned", "closed"
Occasion = Literal["first", "manual", "rework", "reopen"]
Refusal = Literal["unknown_owner", "closed", "held_already"]


@dataclass(frozen=True)
class RoutedCase:
    """Routing's view of a case it dispatched: what the owner needs, who holds it, whether it is open."""

    case_id: str
    case_no: str
    category: str
    unit_grid: str
    description: str
    location: dict[str, Any] | None
    address: str | None
    media: list[str]
    holder: str | None
    status: str


@dataclass(frozen=True)
class Terms:
    """The limit and priority a dispatch ran on (a fallback when the category is no longer known)."""

    limit: Limit
    priority: str


class ManualDispatchRefused(Exception):
    """An operator's dispatch that cannot be done, with the kind of refusal and a reason for the operator."""

    def __init__(self, kind: Refusal, reason: str):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def recalled_holder(holder: str | None, new_owner: str) -> str | None:
    """Who must be told to stop when the case goes to new_owner: the current holder, if someone else."""
    return holder if holder is not None and holder != new_owner else None


def check_manual_dispatch(case: RoutedCase, owner_code: str, rules: RoutingRules) -> str | None:
    """May an operator dispatch this case to this owner now; returns the holder to recall (or None),
    raises ManualDispatchRefused otherwise."""
    if owner_code not in rules.owners:
        raise ManualDispatchRefused(
            "unknown_owner",
            f"未知责任单位 {owner_code} / {owner_code!r} is not an owner code: use a department's code or a "
            "community's grid code, as GET /api/v1/owners lists them",
        )
    if case.status == CLOSED:
        raise ManualDispatchRefused(
            "closed", f"案件 {case.case_no} 已结案 / case {case.case_no} is closed and cannot be dispatched"
        )
    if case.holder == owner_code:
        raise ManualDispatchRefused(
            "held_already",
            f"案件 {case.case_no} 已由 {owner_code} 办理 / {owner_code} already holds case {case.case_no}",
        )
    return recalled_holder(case.holder, owner_code)


def redispatch_assignment(rules: RoutingRules, *, category: str, owner_code: str, last: Terms | None) -> Assignment:
    """The terms of a dispatch to a chosen owner: the category's limit and urgency; for a category the
    rules no longer know, the terms of the case's last dispatch."""
    # An owner the street data no longer lists (a reload dropped it) is still who supervision or the
    # operator named; its name is then unknown.
    owner = rules.owners.get(owner_code) or Owner(owner_code, "", "unknown")
    rule = rules.categories.get(category)
    if rule is not None:
        return Assignment(owner, rule.urgency, rule.limit, rule.name)
    if last is not None:
        return Assignment(owner, last.priority, last.limit, None)
    raise ValueError(f"category {category!r} has no rule and the case has no earlier dispatch to take terms from")


def plan_redispatch(
    rules: RoutingRules, calendar: WorkCalendar, *, category: str, owner_code: str, last: Terms | None,
    dispatched_at: datetime,
) -> DispatchPlan:
    """A fresh limit counted from now, for the chosen owner."""
    assignment = redispatch_assignment(rules, category=category, owner_code=owner_code, last=last)
    return DispatchPlan(assignment, dispatched_at, due_at(calendar, dispatched_at, assignment.limit))

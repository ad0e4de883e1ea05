"""The dispatch decision: which owner gets a case, with which priority, due when."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.worktime import WorkCalendar
from services.routing.domain.model import COMMUNITY, CategoryRule, Limit, Owner, RoutingRules

# What no rule covers goes to the command center, which must re-dispatch it by hand within the
# design's stage limit for dispatching (1 work hour), so that is the clock it runs on.
MANUAL_DISPATCH_LIMIT = Limit(1, "work_hours")
MANUAL_DISPATCH_PRIORITY = "normal"


class RoutingDataMissing(RuntimeError):
    """The street's data has no command center: nothing can be dispatched by hand."""


@dataclass(frozen=True)
class Assignment:
    """Who gets the case and on what terms; manual_reason says why a rule did not decide."""

    owner: Owner
    priority: str
    limit: Limit
    category_name: str | None
    manual_reason: str | None = None


@dataclass(frozen=True)
class DispatchPlan:
    """An assignment placed in time."""

    assignment: Assignment
    dispatched_at: datetime
    due_at: datetime


def decide_owner(rules: RoutingRules, category: str, unit_grid: str) -> Assignment:
    """The owner of a case: the category's department, or the community of its unit grid;
    an unknown category or unit grid goes to the command center for manual dispatch."""
    rule = rules.categories.get(category)
    if rule is None:
        return _manual(rules, None, f"未知类别 {category}，请人工派遣 (unknown category)")
    community = rules.unit_grid_community.get(unit_grid)
    if community is None:
        return _manual(rules, rule, f"未知单元网格 {unit_grid}，请人工派遣 (unknown unit grid)")
    owner_code = community if rule.owner == COMMUNITY else rule.owner
    owner = rules.owners.get(owner_code)
    if owner is None:
        return _manual(rules, rule, f"类别 {category} 的责任单位 {owner_code} 不存在，请人工派遣 (owner not found)")
    return Assignment(owner, rule.urgency, rule.limit, rule.name)


def _manual(rules: RoutingRules, rule: CategoryRule | None, reason: str) -> Assignment:
    if rules.command_center is None:
        raise RoutingDataMissing(f"no department of kind command_center to dispatch by hand: {reason}")
    if rule is None:
        return Assignment(rules.command_center, MANUAL_DISPATCH_PRIORITY, MANUAL_DISPATCH_LIMIT, None, reason)
    # A known category keeps its own limit and urgency: the resident's clock does not reset.
    return Assignment(rules.command_center, rule.urgency, rule.limit, rule.name, reason)


def due_at(calendar: WorkCalendar, dispatched_at: datetime, limit: Limit) -> datetime:
    """When a limit counted from dispatch runs out on the street's work calendar."""
    return calendar.deadline(dispatched_at, limit.value, limit.unit)


def plan_dispatch(
    rules: RoutingRules, calendar: WorkCalendar, *, category: str, unit_grid: str, dispatched_at: datetime
) -> DispatchPlan:
    """Decide the owner and place the limit on the calendar from the dispatch time."""
    assignment = decide_owner(rules, category, unit_grid)
    return DispatchPlan(assignment, dispatched_at, due_at(calendar, dispatched_at, assignment.limit))

"""What routing decides with: owners, categories and the community each unit grid belongs to."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from shared.street import Street

COMMUNITY = "community"  # a category owner meaning "the community of the case's unit grid"
COMMAND_CENTER = "command_center"  # department kind that dispatches by hand what no rule covers


@dataclass(frozen=True)
class Owner:
    """Who receives tasks: the command center, a department, a utility, or a community grid."""

    code: str
    name: str
    kind: str


@dataclass(frozen=True)
class Limit:
    """A handling limit: value in work_hours, work_days or (calendar) hours."""

    value: float
    unit: str


@dataclass(frozen=True)
class CategoryRule:
    """A case category: its owner code (or 'community'), limit and urgency."""

    code: str
    name: str
    owner: str
    limit: Limit
    urgency: str


@dataclass(frozen=True)
class RoutingRules:
    """The street's routing data, whole (from a street folder) or just what one case needs (from SQL)."""

    categories: Mapping[str, CategoryRule]
    unit_grid_community: Mapping[str, str]  # unit grid code → its community grid code
    owners: Mapping[str, Owner]  # departments and communities by code
    command_center: Owner | None = None


def rules_from_street(street: Street) -> RoutingRules:
    """All routing rules of a street read from its folder."""
    owners = {d.code: Owner(d.code, d.name, d.kind) for d in street.departments.values()}
    owners.update({g.code: Owner(g.code, g.name, COMMUNITY) for g in street.level("community")})
    return RoutingRules(
        categories={
            c.code: CategoryRule(c.code, c.name, c.owner, Limit(c.time_limit, c.limit_unit), c.urgency)
            for c in street.categories.values()
        },
        unit_grid_community={g.code: street.community_of(g.code).code for g in street.level("unit")},
        owners=owners,
        command_center=find_command_center(owners.values()),
    )


def find_command_center(owners: Iterable[Owner]) -> Owner | None:
    """The department of kind command_center (the first by code if a street lists several)."""
    centers = sorted((o for o in owners if o.kind == COMMAND_CENTER), key=lambda o: o.code)
    return centers[0] if centers else None


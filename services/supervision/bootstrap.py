"""The one place supervision is wired: runtime, street policy, handlers, poller, HTTP."""
from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from services.supervision.domain.policy import StreetPolicy
from services.supervision.entrypoints.deadlines import deadline_loop
from services.supervision.entrypoints.http import build_router
from services.supervision.entrypoints.stats import StatsNames, build_stats_router
from services.supervision.handlers import CaseLog, CommandCenter, DeadlineHandler, OwnerUpdates
from shared.http import create_app
from shared.runtime import Service, ServiceRuntime
from shared.settings import Settings
from shared.street import Street, load_street
from shared.worktime import WorkCalendar

MIGRATIONS = Path(__file__).parent / "migrations"


def street_policy(street: Street, timezone: str) -> StreetPolicy:
    """The street's calendar (with its override table), category names and command center(s)."""
    return StreetPolicy(
        # The settings' zone, not shared.clock.street_zone(): that one reads the process-wide settings.
        calendar=WorkCalendar(zone=ZoneInfo(timezone), overrides=street.calendar_overrides),
        category_names={code: c.name for code, c in street.categories.items()},
        command_centers=frozenset(d.code for d in street.departments.values() if d.kind == "command_center"),
        communities={c.code: tuple(sorted(u.code for u in street.level("unit") if street.community_of(u.code).code == c.code))
                     for c in street.level("community")},
    )


def build(settings: Settings, manage_runtime: bool = True) -> Service:
    """Supervision: consumes wangge.cases, keeps the read model and clocks, fires deadlines, serves /api/v1."""
    runtime = ServiceRuntime("supervision", settings, MIGRATIONS)
    street = load_street(settings.street_dir)
    policy = street_policy(street, settings.street_timezone)
    topics = runtime.topics
    case_log = CaseLog(topics, policy)
    production = settings.profile == "production"
    updates = OwnerUpdates(case_log, topics, runtime.uow, production=production,
                           require_signature=production or settings.require_signed_updates)
    center = CommandCenter(case_log, topics, policy, runtime.uow)
    deadlines = DeadlineHandler(case_log, topics, policy, runtime.uow, lambda: runtime.pool)
    runtime.consume([topics.cases], case_log)
    runtime.consume([topics.task_updates], updates, group_suffix="-updates")
    runtime.worker("deadlines", deadline_loop(deadlines, settings.deadline_poll_seconds))
    app = create_app(
        runtime,
        title="wangge supervision",
        description="督办: the case read model, handling clocks and deadlines (催办 at 75%, 超期/督办 at 100%), statistics.",
        manage_runtime=manage_runtime,
    )
    app.include_router(build_router(runtime, policy, updates, center))
    app.include_router(build_stats_router(runtime, policy, StatsNames.from_street(street)))
    return Service(runtime, app)

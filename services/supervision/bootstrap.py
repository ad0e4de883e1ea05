"""The one place supervision is wired: runtime, street policy, handlers, poller, HTTP."""
from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from services.supervision.adapters import config_store
from services.supervision.domain.policy import StreetPolicy
from services.supervision.entrypoints.admin import build_admin_router
from services.supervision.entrypoints.deadlines import deadline_loop
from services.supervision.entrypoints.coordinator import build_coordinator_router
from services.supervision.entrypoints.http import build_router
from services.supervision.entrypoints.media import build_media_router
from services.supervision.entrypoints.public import build_public_router
from services.supervision.entrypoints.search import build_search_router
from services.supervision.entrypoints.sessions import build_sessions_router
from services.supervision.entrypoints.stats import StatsNames, build_stats_router
from services.supervision.figures import StreetFigures, figures_loop
from services.supervision.entrypoints.weekly_pdf import build_weekly_pdf_router
from services.supervision.case_log import (
    CASES_CONSUMER, CaseLog, close_on_the_spot, fold_case_events, forward_comments, reopen_if_unsatisfied,
)
from services.supervision.commands import (
    CheckCase, DecideExtension, SuspendCase, UrgeCase, check_case, decide_extension_request, suspend_case, urge_case,
)
from services.supervision.handlers import (
    UPDATES_CONSUMER, DeadlineHandler, OwnerUpdates, apply_updates, held_updates_loop, release_held_updates,
)
from services.supervision.live_policy import LivePolicy
from services.supervision.people import People
from shared.clock import Clock
from shared.contracts import registered_types
from shared.contracts import cases as c
from shared.contracts.tasks import UPDATE_TYPES
from shared.http import create_app
from shared.messagebus import MessageBus, ProjectingBus, carrying_only
from shared.media import store_from_settings
from shared.runtime import Service, ServiceRuntime
from shared.settings import Settings
from shared.street import Street, load_street, read_calendar_overrides, street_config_folder
from shared.street_config import StreetConfig, from_folder
from shared.street_rules import announce
from shared.watchdog import Heartbeat
from shared.worktime import WorkCalendar

MIGRATIONS = Path(__file__).parent / "migrations"


def street_policy(street: Street, timezone: str, config: StreetConfig | None = None,
                  overrides: dict | None = None) -> StreetPolicy:
    """The street's calendar (with its override tables), time rules, category names and command center(s)."""
    config = config or StreetConfig()
    return StreetPolicy(
        # The settings' zone, not shared.clock.street_zone(): that one reads the process-wide settings.
        calendar=WorkCalendar(zone=ZoneInfo(timezone), periods=config.periods,
                              overrides={**(overrides or {}), **street.calendar_overrides}),
        config=config,
        category_names={code: c.name for code, c in street.categories.items()},
        command_centers=frozenset(d.code for d in street.departments.values() if d.kind == "command_center"),
        communities={c.code: tuple(sorted(u.code for u in street.level("unit") if street.community_of(u.code).code == c.code))
                     for c in street.level("community")},
        coordinator_grids=street.coordinator_grids(),
    )


def build(settings: Settings, manage_runtime: bool = True, clock: Clock | None = None) -> Service:
    """Supervision: consumes wangge.cases, keeps the read model and clocks, fires deadlines, serves /api/v1."""
    runtime = ServiceRuntime("supervision", settings, MIGRATIONS)
    street = load_street(settings.street_dir)
    # The street's time rules and calendar overrides: <name>-config.toml and <name>-calendar.csv in its
    # configuration folder (WANGGE_STREET_CONFIG_DIR, default <repo>/streets/<name>; the street folder wins
    # if it holds its own *-config.toml). The street folder's own calendar rows win over the folder's.
    config_dir = street_config_folder(settings.street_dir, settings.street_config_dir)
    file_config, source = from_folder(config_dir)
    policy = street_policy(street, settings.street_timezone, file_config, read_calendar_overrides(config_dir))
    topics = runtime.topics
    live = LivePolicy(policy)
    clock = clock or Clock()  # one time for the handlers, the poller and the HTTP answers
    case_log = CaseLog(topics, live, clock)

    async def seed_config() -> None:
        """The file seeds supervision's street_config table when empty; the table's version is then in force,
        and announced on wangge.street-config at every start: a follower that missed a version learns it now."""
        async with runtime.uow() as uow:
            await config_store.seed(uow.conn, file_config.to_dict(), source)
            row = await config_store.current(uow.conn)
            announce(topics, uow, version=row["version"], config=row["config"], changed_by=row["updated_by"],
                     source=runtime.name)
            await uow.commit()
        async with runtime.pool.acquire() as conn:
            await live.refresh(conn)

    runtime.before_consuming(seed_config)
    production = settings.profile == "production"
    updates = OwnerUpdates(case_log, topics, runtime.uow, production=production,
                           require_signature=production or settings.require_signed_updates,
                           hold_seconds=settings.held_update_seconds,
                           hold_per_owner=settings.held_updates_per_owner)
    # The command center's decisions (HTTP): commands on a bus of their own, each one unit of work, committed.
    center = MessageBus(
        consumer="supervision:commands", events={},
        commands={CheckCase: check_case, DecideExtension: decide_extension_request, SuspendCase: suspend_case,
                  UrgeCase: urge_case},
        deps={"case_log": case_log, "policy": policy, "topics": topics},
        uow_factory=runtime.uow,
    )
    deadlines = DeadlineHandler(case_log, topics, policy, runtime.uow, lambda: runtime.pool)
    # wangge.cases: every event folded into its case as one set per batch (the projection; history keeps every type,
    # as it always did), then what some folds make happen, by type.
    cases_bus = ProjectingBus(
        consumer=CASES_CONSUMER,
        projection=fold_case_events, projects=list(registered_types().values()),
        events={c.CaseAccepted: [close_on_the_spot], c.CaseSurveyAnswered: [reopen_if_unsatisfied],
                c.CaseCommented: [forward_comments], c.CaseDispatched: [release_held_updates]},
        deps={"case_log": case_log, "updates": updates},
    )
    runtime.consume([topics.cases], cases_bus)
    models = registered_types()
    updates_bus = MessageBus(
        consumer=UPDATES_CONSUMER,
        events=carrying_only("wangge.task-updates", {models[type_]: [apply_updates] for type_ in UPDATE_TYPES}),
        deps={"updates": updates},
    )
    runtime.consume([topics.task_updates], updates_bus, group_suffix="-updates")
    runtime.worker("held-updates", held_updates_loop(updates, settings.held_update_poll_seconds))
    turns = Heartbeat()
    runtime.worker("deadlines", deadline_loop(deadlines, settings.deadline_poll_seconds,
                                              gauge_seconds=settings.deadline_gauge_seconds, heartbeat=turns), turns)
    app = create_app(
        runtime,
        title="wangge supervision",
        description="督办: the case read model, handling clocks and deadlines (催办 at 75%, 超期/督办 at 100%), statistics.",
        manage_runtime=manage_runtime,
    )
    app.state.cases_bus, app.state.updates_bus, app.state.bus = cases_bus, updates_bus, center  # (tests use them)
    app.state.updates = updates  # (tests expire held updates with a moved clock)
    app.include_router(build_search_router(runtime, policy, clock))  # before /cases/{case_no}, which would take "search"
    store = store_from_settings(settings)
    app.include_router(build_router(runtime, live, updates, center, clock, store))
    app.include_router(build_coordinator_router(runtime, policy))
    street_figures = StreetFigures(lambda: runtime.pool, live, clock)
    runtime.worker("statistics", figures_loop(street_figures, settings.stats_keep_seconds))
    app.state.street_figures = street_figures  # (tests keep days at once)
    stats_router = build_stats_router(runtime, policy, StatsNames.from_street(street), street_figures, clock)
    app.include_router(stats_router)
    app.include_router(build_admin_router(runtime, live))
    people = People(lambda: runtime.pool, topics, street, settings, clock)
    app.include_router(build_sessions_router(people))
    app.state.people = people  # (tests make accounts directly)
    app.include_router(build_weekly_pdf_router(policy, stats_router))
    app.include_router(build_public_router(runtime, policy, clock))  # the street's recent cases, for anyone (/my/)
    app.include_router(build_media_router(runtime, store, street))
    return Service(runtime, app)

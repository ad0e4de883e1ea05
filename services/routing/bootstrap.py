"""The one place routing is wired: runtime, consumer, HTTP app."""
from __future__ import annotations

from shared.clock import Clock
from shared.contracts.cases import CaseAccepted, CaseClosed, CaseReopened, CaseReturned, CaseReworked
from shared.http import create_app
from shared.messagebus import MessageBus
from shared.runtime import Service, ServiceRuntime
from shared.settings import Settings
from shared.street_rules import (
    CONSUMER_SUFFIX, STREET_CONFIG_TYPES, StreetRules, apply_street_config_event, street_file_config,
)
from services.routing.entrypoints.grids import build_grids_router
from services.routing.entrypoints.http import build_router
from services.routing.entrypoints.suggest import build_suggest_router
from services.routing.handlers import (
    CASES_CONSUMER, Dispatcher, DispatchByHand, dispatch_by_hand, dispatch_first, dispatch_reopened, dispatch_rework,
    hold_returned, mark_closed,
)
from services.routing.loading import MIGRATIONS, SERVICE, ensure_street_loaded
from services.routing.views import GridIndexCache


def build(settings: Settings, manage_runtime: bool = True, clock: Clock | None = None) -> Service:
    """Routing's runtime (consuming wangge.cases) and its HTTP app."""
    runtime = ServiceRuntime(SERVICE, settings, MIGRATIONS)
    # A fresh deployment (or an in-process test) loads its street before consuming any case.
    runtime.before_consuming(lambda: ensure_street_loaded(settings))
    # The street's time rules (work periods) in force, learnt from supervision; its file until then.
    street_rules = StreetRules(street_file_config(settings))
    runtime.consume([runtime.topics.street_config], apply_street_config_event, group_suffix=CONSUMER_SUFFIX,
                    types=set(STREET_CONFIG_TYPES))
    # One dispatcher (and rules cache) for the case events and the operators' manual dispatch: one bus for both.
    dispatcher = Dispatcher(runtime.topics, street_rules, clock or Clock())
    bus = MessageBus(
        consumer=CASES_CONSUMER,
        events={CaseAccepted: [dispatch_first], CaseReturned: [hold_returned], CaseReworked: [dispatch_rework],
                CaseReopened: [dispatch_reopened], CaseClosed: [mark_closed]},
        commands={DispatchByHand: dispatch_by_hand},
        deps={"dispatcher": dispatcher},
        uow_factory=runtime.uow,
    )
    runtime.consume([runtime.topics.cases], bus)
    app = create_app(
        runtime,
        title="wangge routing",
        description="网格与派遣：grids, address registry, owners and categories; dispatches accepted cases "
        "to their owner's task topic, again after a failed check or a reopening, and by hand.",
        manage_runtime=manage_runtime,
    )
    app.state.bus = bus  # what the HTTP entrypoints (and tests) hand their commands to
    app.include_router(build_router(runtime, GridIndexCache(), bus))
    app.include_router(build_grids_router(runtime))
    app.include_router(build_suggest_router(runtime))
    return Service(runtime, app)

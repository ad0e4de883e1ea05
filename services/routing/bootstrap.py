"""The one place routing is wired: runtime, consumer, HTTP app."""
from __future__ import annotations

from shared.contracts.cases import CaseAccepted
from shared.http import create_app
from shared.runtime import Service, ServiceRuntime
from shared.settings import Settings
from services.routing.entrypoints.http import build_router
from services.routing.handlers import CaseEvents
from services.routing.loading import MIGRATIONS, SERVICE, ensure_street_loaded
from services.routing.views import GridIndexCache


def build(settings: Settings, manage_runtime: bool = True) -> Service:
    """Routing's runtime (consuming wangge.cases) and its HTTP app."""
    runtime = ServiceRuntime(SERVICE, settings, MIGRATIONS)
    # A fresh deployment (or an in-process test) loads its street before consuming any case.
    runtime.before_consuming(lambda: ensure_street_loaded(settings))
    runtime.consume([runtime.topics.cases], CaseEvents(runtime), types={CaseAccepted.TYPE})
    app = create_app(
        runtime,
        title="wangge routing",
        description="网格与派遣：grids, address registry, owners and categories; dispatches accepted cases "
        "to their owner's task topic.",
        manage_runtime=manage_runtime,
    )
    app.include_router(build_router(runtime, GridIndexCache()))
    return Service(runtime, app)

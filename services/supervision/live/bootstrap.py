"""The one place the live process is wired: street names, faust app, runtime, HTTP app."""
from __future__ import annotations

from shared.http import create_app
from shared.runtime import Service
from shared.settings import Settings
from shared.street import load_street
from services.supervision.live import metrics
from services.supervision.live.figures import Names
from services.supervision.live.http import build_live_router
from services.supervision.live.runtime import LiveRuntime
from services.supervision.live.streams import LiveOptions, LiveStreams


def street_names(settings: Settings) -> Names:
    """What the screen calls the street's unit grids, communities and categories (from the street folder)."""
    street = load_street(settings.street_dir)
    return Names(
        unit_grids={g.code: g.name for g in street.level("unit")},
        communities={g.code: g.name for g in street.level("community")},
        community_of={g.code: street.community_of(g.code).code for g in street.level("unit")},
        categories={c.code: c.name for c in street.categories.values()},
    )


class _Exposed(LiveRuntime):
    """The runtime that also puts the figures on /metrics while it runs."""

    async def start(self) -> None:
        await super().start()
        self.collector = metrics.register(self.streams)

    async def stop(self) -> None:
        collector = getattr(self, "collector", None)
        if collector is not None:
            metrics.unregister(collector)
            self.collector = None
        await super().stop()


def build(settings: Settings, manage_runtime: bool = True, options: LiveOptions | None = None) -> Service:
    """The live process: its faust app over wangge.cases and its HTTP app (/healthz, /metrics, /api/v1/live/…)."""
    streams = LiveStreams(settings, street_names(settings), options)
    runtime = _Exposed(settings, streams)
    app = create_app(
        runtime,  # type: ignore[arg-type]  — shaped like ServiceRuntime: start, stop, check_ready, pool, settings
        title="wangge supervision live figures",
        description="督办实时数据：a faust-streaming app over wangge.cases keeping windowed tables (cases per unit grid "
        "per hour, open and overdue now, a category spiking in a community), served to the big screen and Prometheus.",
        manage_runtime=manage_runtime,
    )
    app.include_router(build_live_router(runtime, streams, settings.live_streams_per_credential))
    return Service(runtime, app)  # type: ignore[arg-type]

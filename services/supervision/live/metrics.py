"""The live figures as Prometheus gauges, computed from the faust tables at each scrape (nothing to keep in step)."""
from __future__ import annotations

from typing import Any, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from services.supervision.live.streams import LiveStreams


class LiveCollector(Collector):
    """wangge_live_* from the running app's tables."""

    def __init__(self, streams: LiveStreams):
        self.streams = streams

    def collect(self) -> Iterator[Any]:
        """The gauges of this scrape."""
        now = self.streams.figures()
        yield _gauge("wangge_live_open_cases", "Cases not finished now (the street)", now["open_now"])
        yield _gauge("wangge_live_overdue_cases", "Open cases past their handling deadline now (the street)",
                     now["overdue_now"])
        open_grid = GaugeMetricFamily("wangge_live_unit_grid_open_cases", "Open cases now per unit grid", labels=["unit_grid"])
        late_grid = GaugeMetricFamily("wangge_live_unit_grid_overdue_cases", "Overdue cases now per unit grid",
                                      labels=["unit_grid"])
        for row in now["unit_grids"]:
            open_grid.add_metric([row["unit_grid"]], row["open"])
            late_grid.add_metric([row["unit_grid"]], row["overdue"])
        yield open_grid
        yield late_grid
        last_hour = GaugeMetricFamily("wangge_live_cases_last_hour", "Cases accepted (立案) in the current hour per unit grid",
                                      labels=["unit_grid"])
        for row in now["unit_grids"]:
            last_hour.add_metric([row["unit_grid"]], now["cases_last_hour"].get(row["unit_grid"], 0))
        yield last_hour
        yield _gauge("wangge_live_spikes", "Categories spiking in a community now (count over the threshold in a window)",
                     len(now["spikes"]))
        spike = GaugeMetricFamily("wangge_live_spike_cases", "Cases of a spiking category in a community, in its window",
                                  labels=["community", "category"])
        for row in now["spikes"]:
            spike.add_metric([row["community"], row["category"]], row["count"])
        yield spike
        seen = CounterMetricFamily("wangge_live_events", "Case events the live app has followed since it started")
        seen.add_metric([], self.streams.events_seen)
        yield seen
        forgotten = CounterMetricFamily("wangge_live_cases_forgotten",
                                        "Finished cases the live app's cases table forgot since it started (forgetting.py)")
        forgotten.add_metric([], self.streams.cases_forgotten)
        yield forgotten


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def register(streams: LiveStreams) -> LiveCollector:
    """Expose this app's figures on /metrics (unregister() when it stops)."""
    collector = LiveCollector(streams)
    REGISTRY.register(collector)
    return collector


def unregister(collector: LiveCollector) -> None:
    """Stop exposing a stopped app's figures."""
    REGISTRY.unregister(collector)

"""docs/METRICS.md documents every wangge_* metric the code registers, with its type and labels, and nothing else."""
from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from shared.settings import REPO_ROOT, Settings

DOC = REPO_ROOT / "docs" / "METRICS.md"
ROW = re.compile(r"^\|\s*`(wangge_[a-z0-9_]+)`\s*\|\s*([a-z]+)\s*\|\s*([^|]*)\|\s*([^|]*)\|\s*([^|]*)\|\s*$")


def _import_everything_that_registers() -> None:
    """Import the services as they run (their bootstraps) and every metrics module, so each metric is registered."""
    for service in ("intake", "routing", "supervision", "notify"):
        importlib.import_module(f"services.{service}.bootstrap")
    for path in sorted([*(REPO_ROOT / "services").rglob("metrics.py"), REPO_ROOT / "shared" / "metrics.py"]):
        module = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
        importlib.import_module(module)


def _exposed_name(family_name: str, kind: str) -> str:
    # The client strips _total from a counter's family name; Prometheus (and the docs) see it with _total.
    return f"{family_name}_total" if kind == "counter" else family_name


def _runtime_collectors() -> list[Collector]:
    """The collectors a process registers only while it runs, built here over their real (unstarted) source."""
    from services.supervision.live.bootstrap import street_names
    from services.supervision.live.metrics import LiveCollector
    from services.supervision.live.streams import LiveStreams

    settings = Settings()
    collectors = [LiveCollector(LiveStreams(settings, street_names(settings), None))]
    known = {type(c) for c in collectors}
    for name, module in list(sys.modules.items()):
        if name.startswith(("shared", "services")) and module is not None:
            for value in list(vars(module).values()):
                # Collector is a typing Protocol: a class of ours with a collect() is one.
                if isinstance(value, type) and value.__module__ == name and callable(getattr(value, "collect", None)):
                    assert value in known, f"{name}.{value.__name__} is a collector this test does not build: add it"
    return collectors


def _collected(collector: Collector) -> dict[str, tuple[str, frozenset[str]]]:
    found = {}
    for family in collector.collect():
        if family.name.startswith("wangge_"):
            labels = getattr(family, "_labelnames", ()) or {n for sample in family.samples for n in sample.labels}
            found[_exposed_name(family.name, family.type)] = (family.type, frozenset(labels))
    return found


def registered() -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (type, label names) of every wangge_* metric in the process registry or of a run-time collector."""
    _import_everything_that_registers()
    labels_of: dict[str, frozenset[str]] = {}
    for name, module in list(sys.modules.items()):
        if not name.startswith(("shared", "services")) or module is None:
            continue
        for value in list(vars(module).values()):
            if isinstance(value, MetricWrapperBase):
                labels_of[_exposed_name(value._name, value._type)] = frozenset(value._labelnames)
    found = {}
    for family in REGISTRY.collect():
        if family.name.startswith("wangge_"):
            name = _exposed_name(family.name, family.type)
            assert name in labels_of, f"{name} is registered but not as a module-level metric of shared/ or services/"
            found[name] = (family.type, labels_of[name])
    for collector in _runtime_collectors():
        found.update(_collected(collector))
    return found


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (type, label names) of every metric row in docs/METRICS.md (each row checked for a meaning)."""
    rows: dict[str, tuple[str, frozenset[str]]] = {}
    for number, line in enumerate(DOC.read_text(encoding="utf-8").splitlines(), 1):
        if not line.startswith("| `wangge_"):
            continue
        match = ROW.match(line)
        assert match, f"docs/METRICS.md:{number}: a metric row needs | `name` | type | labels | service | meaning |"
        name, kind, labels, service, meaning = match.groups()
        assert name not in rows, f"docs/METRICS.md:{number}: {name} is documented twice"
        assert service.strip() and len(meaning.strip()) > 20, f"docs/METRICS.md:{number}: {name} needs its service and meaning"
        names = [label.strip() for label in labels.split(",") if label.strip() not in ("", "—")]
        rows[name] = (kind, frozenset(names))
    return rows


def test_every_registered_metric_is_documented():
    missing = sorted(set(registered()) - set(documented()))
    assert not missing, f"registered but not in docs/METRICS.md: {missing}"


def test_every_documented_metric_exists():
    stale = sorted(set(documented()) - set(registered()))
    assert not stale, f"in docs/METRICS.md but registered by no code: {stale}"


def test_documented_types_and_labels_are_the_real_ones():
    real, doc = registered(), documented()
    wrong = {name: {"code": real[name], "docs": doc[name]} for name in set(real) & set(doc) if real[name] != doc[name]}
    assert not wrong, f"type or labels differ between the code and docs/METRICS.md: {wrong}"


def test_the_docs_see_the_metrics_the_services_count():
    # A guard against the test passing on an empty registry: the core series are among them.
    names = set(registered())
    assert {"wangge_messages_consumed_total", "wangge_outbox_backlog", "wangge_deadlines_fired_total",
            "wangge_notify_deliveries_total", "wangge_handler_seconds", "wangge_live_open_cases"} <= names
    assert Path(DOC).is_file()


GRAFANA = REPO_ROOT / "deploy" / "grafana"


def test_the_grafana_dashboard_shows_documented_metrics_from_the_provisioned_datasource():
    dashboard = json.loads((GRAFANA / "dashboards" / "wangge.json").read_text(encoding="utf-8"))
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "wangge.yml").read_text())["datasources"][0]
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "wangge.yml").read_text())["providers"][0]
    compose = yaml.safe_load((REPO_ROOT / "deploy" / "compose" / "docker-compose.yml").read_text())
    known = set(documented())
    used: set[str] = set()
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"]), "panel ids repeat"
    for panel in panels:
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        assert panel["targets"] and panel["description"], panel["title"]
        for target in panel["targets"]:
            for name in re.findall(r"\bwangge_[a-z0-9_]+", target["expr"]):
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                assert name in known or base in known, f"panel {panel['title']} uses {name}, not in docs/METRICS.md"
                used.add(base if base in known else name)
    # what the operators' watch must show: cases flowing, lag, outbox, latency, deadlines, overdue, deliveries
    assert {"wangge_messages_produced_total", "wangge_consumer_lag", "wangge_outbox_backlog", "wangge_handler_seconds",
            "wangge_deadlines_fired_total", "wangge_clocks_overdue", "wangge_notify_deliveries_total"} <= used
    # compose mounts the dashboards where the provider reads them, and points the datasource at its Prometheus
    grafana = compose["services"]["grafana"]
    assert f"../grafana/dashboards:{provider['options']['path']}:ro" in grafana["volumes"]
    assert datasource["url"] == "${WANGGE_PROMETHEUS_URL}" and grafana["environment"]["WANGGE_PROMETHEUS_URL"]

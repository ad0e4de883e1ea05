"""Issue 17's goals for the benchmarks, in one place: each goal's threshold, the check that every figure a
benchmark prints for work that happened is plausible, the figures each benchmark saves for the sitting, and the
sitting's table (each goal with its figure, the floor and the baselines, and PASS or FAIL).

The sitting, as issue 17 checks it (`./dev up` first; one after another, never at once: they share two cores):

    .venv/bin/python -m bench.floor                                  the stack's floor (CPU a case at the least)
    .venv/bin/python -m bench.http                                   POST /api/v1/reports, 32 connections, 30 s
    .venv/bin/python -m bench.e2e --rate 200 --reports 12000         a steady 200 reports/s for 60 s
    .venv/bin/python -m bench.e2e --reports 3000 --baselines         the burst; measures the floor and the baselines
                                                                     again and ends with the table of every goal

Each saves its figures in $WANGGE_STATE_DIR/bench/ (default .local/bench/); the table takes the others' from there,
with how long ago they were measured.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.support import state_dir

CPU_PER_CASE_MS = 2.0  # every process counted, PostgreSQL included
CPU_TIMES_FLOOR = 2.5  # … and at most this many times the floor measured in the same sitting
BURST_REPORTS = 3000
BURST_TASKS_PER_S = 1000  # every task on its owner's topic
BURST_ACKS_PER_S = 500  # every acknowledgement out, the gateway's stand-in answering in GATEWAY_MS
GATEWAY_MS = 5.0
STEADY_RATE = 200.0
STEADY_SECONDS = 60.0
STEADY_P99_TASK_MS = 100.0
STEADY_P99_ACK_MS = 1000.0
HTTP_CONNECTIONS = 32
HTTP_ACCEPTED_PER_S = 500.0
HTTP_P99_MS = 100.0
HTTP_CAUGHT_UP_S = 5.0  # "keeping up": nothing left behind this long after the last request
KAFKA_WRITTEN_BEFORE = 12.0  # records a case wrote and read when issue 17 was filed: the goal is fewer
KAFKA_READ_BEFORE = 17.0
CORES = 2

# A figure of work that happened is implausible below this share of what the floor says that work costs at the
# least (the floor is measured at the most favourable batch, so the real system cannot be cheaper; the half is
# for the noise of two readings a few seconds apart).
PLAUSIBLE_SHARE = 0.5

# Exit codes of the benchmarks: every figure trusted (goals may still FAIL: figures, not assertions); the run did
# not complete; a figure read below its floor of plausibility (the accounting is broken: nothing printed is trusted).
EXIT_OK, EXIT_INCOMPLETE, EXIT_IMPLAUSIBLE = 0, 1, 2


@dataclass(frozen=True)
class Plausible:
    """A figure of work that happened and the least it can honestly read."""

    label: str
    figure: float
    least: float
    unit: str

    @property
    def passed(self) -> bool:
        return math.isfinite(self.figure) and self.figure >= self.least and self.figure > 0


def _num(x: float) -> str:
    if not math.isfinite(x):
        return "none"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def check_plausible(checks: list[Plausible], missing: dict[str, str] | None = None) -> bool:
    """Print each figure against its floor of plausibility; False if any reads below it or could not be read."""
    print("\nis each figure plausible? (at least what its work must cost; below that the accounting is broken):")
    for check in checks:
        figure = f"{_num(check.figure)} ≥ {_num(check.least)} {check.unit}"
        print(f"  {check.label:<64} {figure:<24} {'PASS' if check.passed else 'FAIL'}")
    for name, why in (missing or {}).items():
        print(f"  {'CPU of ' + name:<64} {why:<24} FAIL")
    passed = all(c.passed for c in checks) and not missing
    if not passed:
        print("  FAIL: a figure above reads below what its work costs at the least, or could not be read: the "
              "accounting is wrong, not the system fast. The figures of this run are not to be trusted.")
    return passed


# ---- the figures each benchmark saves, for the sitting's table ----------------------------------------------------

def results_dir() -> Path:
    return state_dir() / "bench"


def save(kind: str, figures: dict) -> Path:
    """Keep a benchmark's figures (kind: floor, http, burst, steady) with when they were measured."""
    path = results_dir() / f"{kind}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**figures, "at": datetime.now().astimezone().isoformat(timespec="seconds"),
                                "at_epoch": time.time()}, ensure_ascii=False, indent=1))
    return path


def load(kind: str) -> dict | None:
    try:
        return json.loads((results_dir() / f"{kind}.json").read_text())
    except (OSError, ValueError):
        return None


def _ago(saved: dict) -> str:
    minutes = (time.time() - saved.get("at_epoch", 0)) / 60
    return f"{minutes:.0f} min ago" if minutes < 120 else f"{minutes / 60:.1f} h ago, {saved.get('at', '?')}"


# ---- the sitting's table -------------------------------------------------------------------------------------------

@dataclass
class Goal:
    label: str
    figure: str
    passed: bool | None  # None: not measured in this sitting
    floor: str = ""
    baselines: str = ""
    source: str = ""


def _from(saved: dict | None, what: str, this_run: str | None) -> str:
    if saved is None:
        return "not measured"
    return "this run" if saved.get("run_id") == this_run else f"{what}, {_ago(saved)}"


def _trusted(saved: dict) -> bool:
    return bool(saved.get("plausible")) and bool(saved.get("complete", True))


def sitting_goals(burst: dict | None, steady: dict | None, http: dict | None, floor: dict | None,
                  baselines: dict | None, this_run: str | None = None) -> list[Goal]:
    """Every goal of issue 17 with its figure, the floor and the baselines, from what this sitting measured."""
    goals: list[Goal] = []
    floor_ms = floor["ms_per_case"] if floor else math.nan
    at_floor = f"≤ {CORES * 1000 / floor_ms:,.0f} cases/s on {CORES} cores at the floor" if floor else "floor not measured"
    pg = (f"PostgreSQL {baselines['two_row_tx_per_s']:,.0f} two-row tx/s (pgbench, 32 clients)"
          if baselines else "baselines not measured (--baselines)")
    kafka = (f"Kafka {baselines['kafka_records_per_s']:,.0f} records/s (its own producer)" if baselines else "")
    floor_text = f"floor {floor_ms:.2f} ms a case ({_from(floor, 'bench.floor', this_run)})" if floor else "floor not measured"

    cpu_run = burst if burst and burst.get("run_id") == this_run else (steady if steady and steady.get("run_id") == this_run else burst)
    if cpu_run:
        cpu, ok = cpu_run["cpu_ms_per_case"], _trusted(cpu_run)
        source = _from(cpu_run, "bench.e2e", this_run)
        goals.append(Goal(f"CPU per case, every process ≤ {CPU_PER_CASE_MS:g} ms", f"{cpu:.2f} ms",
                          ok and cpu <= CPU_PER_CASE_MS, floor_text, "", source))
        ratio = cpu / floor_ms if floor else math.nan
        goals.append(Goal(f"CPU per case ≤ {CPU_TIMES_FLOOR:g} × the floor of the same sitting",
                          f"{ratio:.1f} × the floor" if floor else "no floor",
                          (ok and ratio <= CPU_TIMES_FLOOR) if floor else None, floor_text, "", source))
    else:
        goals.append(Goal(f"CPU per case, every process ≤ {CPU_PER_CASE_MS:g} ms", "—", None, floor_text, "",
                          "not measured: python -m bench.e2e --reports 3000"))
    if burst:
        size = burst["reports"] >= BURST_REPORTS
        note = "" if size else f" (a burst of {burst['reports']:,}, not {BURST_REPORTS:,})"
        written = burst.get("kafka_written") or math.nan
        per_case_kafka = (f"; {kafka}, ≈ {baselines['kafka_records_per_s'] / written:,.0f} cases/s at "
                          f"{written:.1f} records a case" if baselines and math.isfinite(written) else "")
        source = _from(burst, "bench.e2e burst", this_run)
        goals.append(Goal(f"burst of {BURST_REPORTS:,}: every task on its owner's topic ≥ {BURST_TASKS_PER_S:,}/s",
                          f"{burst['task_rate']:,.0f} cases/s{note}",
                          _trusted(burst) and size and burst["task_rate"] >= BURST_TASKS_PER_S,
                          at_floor, pg + per_case_kafka, source))
        goals.append(Goal(f"burst: every acknowledgement out ≥ {BURST_ACKS_PER_S:,}/s (gateway {GATEWAY_MS:g} ms)",
                          f"{burst['reply_rate']:,.0f} replies/s{note}",
                          _trusted(burst) and size and burst["reply_rate"] >= BURST_ACKS_PER_S
                          and burst.get("gateway_ms") == GATEWAY_MS, at_floor, "", source))
        goals.append(Goal(f"Kafka records written per case < {KAFKA_WRITTEN_BEFORE:g} (today's)",
                          f"{burst['kafka_written']:.1f}", _trusted(burst) and burst["kafka_written"] < KAFKA_WRITTEN_BEFORE,
                          "", "", source))
        goals.append(Goal(f"Kafka records read per case < {KAFKA_READ_BEFORE:g} (today's)",
                          f"{burst['kafka_read']:.1f}", _trusted(burst) and burst["kafka_read"] < KAFKA_READ_BEFORE,
                          "", "", source))
    else:
        goals.append(Goal(f"burst of {BURST_REPORTS:,}: tasks ≥ {BURST_TASKS_PER_S:,}/s, acks ≥ {BURST_ACKS_PER_S}/s, "
                          "Kafka records per case", "—", None, at_floor, pg,
                          f"not measured: python -m bench.e2e --reports {BURST_REPORTS}"))
    if steady:
        long_enough = steady["seconds"] >= STEADY_SECONDS * 0.99 and steady["rate"] >= STEADY_RATE
        note = "" if long_enough else f" ({steady['rate']:g}/s for {steady['seconds']:.0f} s, not {STEADY_RATE:g}/s for {STEADY_SECONDS:g} s)"
        source = _from(steady, "bench.e2e --rate", this_run)
        goals.append(Goal(f"steady {STEADY_RATE:g}/s for {STEADY_SECONDS:g} s: p99 report → task < {STEADY_P99_TASK_MS:g} ms",
                          f"{steady['p99_task_ms']:,.0f} ms{note}",
                          _trusted(steady) and long_enough and steady["p99_task_ms"] < STEADY_P99_TASK_MS, "", "", source))
        goals.append(Goal(f"steady: p99 report → acknowledgement < {STEADY_P99_ACK_MS:g} ms",
                          f"{steady['p99_reply_ms']:,.0f} ms{note}",
                          _trusted(steady) and long_enough and steady["p99_reply_ms"] < STEADY_P99_ACK_MS, "", "", source))
    else:
        goals.append(Goal(f"steady {STEADY_RATE:g}/s for {STEADY_SECONDS:g} s: p99 → task < {STEADY_P99_TASK_MS:g} ms, "
                          f"→ acknowledgement < {STEADY_P99_ACK_MS:g} ms", "—", None, "", "",
                          f"not measured: python -m bench.e2e --rate {STEADY_RATE:g} --reports "
                          f"{STEADY_RATE * STEADY_SECONDS:.0f}"))
    if http:
        source = _from(http, "bench.http", this_run)
        conns = http["connections"] == HTTP_CONNECTIONS
        note = "" if conns else f" ({http['connections']} connections, not {HTTP_CONNECTIONS})"
        goals.append(Goal(f"POST /api/v1/reports, {HTTP_CONNECTIONS} connections: ≥ {HTTP_ACCEPTED_PER_S:g} accepted/s",
                          f"{http['accepted_per_s']:,.0f}/s{note}",
                          _trusted(http) and conns and http["accepted_per_s"] >= HTTP_ACCEPTED_PER_S, "", pg, source))
        goals.append(Goal(f"POST /api/v1/reports: p99 < {HTTP_P99_MS:g} ms", f"{http['p99_ms']:,.0f} ms{note}",
                          _trusted(http) and conns and http["p99_ms"] < HTTP_P99_MS, "", "", source))
        caught = http.get("caught_up_s")
        goals.append(Goal("POST /api/v1/reports: the pipeline keeping up",
                          f"caught up {caught:.1f} s after the last request" if caught is not None else "behind",
                          _trusted(http) and caught is not None and caught < HTTP_CAUGHT_UP_S, "", "", source))
    else:
        goals.append(Goal(f"POST /api/v1/reports, {HTTP_CONNECTIONS} connections: ≥ {HTTP_ACCEPTED_PER_S:g}/s, "
                          f"p99 < {HTTP_P99_MS:g} ms, keeping up", "—", None, "", pg,
                          "not measured: python -m bench.http"))
    return goals


def print_goals(goals: list[Goal]) -> None:
    """The sitting's table: a goal a line with its figure and verdict; the floor, baselines and source below it."""
    print("\nissue 17's goals, this sitting (figure · floor · baselines · where it was measured):")
    for goal in goals:
        mark = "not run" if goal.passed is None else ("PASS" if goal.passed else "FAIL")
        print(f"  {goal.label:<66} {goal.figure:<34} {mark}")
        extra = " · ".join(x for x in (goal.floor, goal.baselines, goal.source) if x)
        if extra:
            print(f"  {'':<4}{extra}")
    counted = [g for g in goals if g.passed is not None]
    print(f"  {sum(g.passed for g in counted)} of {len(counted)} goals measured PASS"
          + (f"; {len(goals) - len(counted)} not measured in this sitting" if len(counted) < len(goals) else ""))


def print_components(used_ms: dict[str, float], floor: dict | None) -> None:
    """CPU per case of each component beside its share of the floor (the broker, PostgreSQL, the Python clients)."""
    if not floor:
        return
    shares = floor["components_us"]
    python = sum(v for k, v in used_ms.items() if k not in ("kafka", "postgresql"))
    print("\nCPU per case by component beside the floor's share (ms):      measured    floor   × floor")
    for label, measured, share in (("Kafka (the broker)", used_ms.get("kafka", math.nan), shares["kafka"]),
                                   ("PostgreSQL", used_ms.get("postgresql", math.nan), shares["postgresql"]),
                                   ("wangge's Python processes (clients)", python, shares["clients"]),
                                   ("all", sum(used_ms.values()), sum(shares.values()))):
        print(f"  {label:<56} {measured:9.2f} {share / 1000:8.2f} {measured / (share / 1000):8.1f}")

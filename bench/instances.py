"""One instance and three instances of everything on the three-broker cluster, side by side (issue 20, item 6).

For each count of instances (--instances, default 1,3) it brings this checkout's stack down and up again with `./dev`
on the Kafka cluster (WANGGE_KAFKA_NODES=3, replication factor 3, min.insync.replicas 2) and that many instances of
each service and of the live figures (WANGGE_INSTANCES=N), then runs bench.e2e's burst (--reports at once, after
--warmup reports not measured) and a steady stream (--rate reports a second for --seconds) against it, with
bench.e2e's own code, and prints the runs side by side: cases/s to the owners' topics, acknowledgements/s, p50/p99
report → task and report → acknowledgement, CPU per case (every process of the stack: each instance, each broker,
PostgreSQL with its exited backends) and per component; with --baselines, the floor (bench.floor) and this machine's
PostgreSQL and Kafka alone, measured right after each burst on the same stack.

Run it from this checkout with the environment you give ./dev (ports moved for a second checkout, WANGGE_STATE_DIR,
WANGGE_PG_HA=1 …); it adds WANGGE_KAFKA_NODES=3 and WANGGE_INSTANCES=N and nothing else:

    .venv/bin/python -m bench.instances --reports 1500 --rate 100 --seconds 20

Instance i of a service listens on its port + 1000·(i-1), broker i on WANGGE_KAFKA_PORT + 100·(i-1): before each
start every one of those ports must be free (a port some other checkout holds stops the run, exit code 3). The stack
is brought down between the runs (a cluster and 3 × 5 processes are heavy on a small machine) and at the end
(--keep-up leaves the last one running). The figures are kept in $WANGGE_STATE_DIR/bench/instances.json, and each
run's as instances-<N>-burst.json, -steady.json, -floor.json: never as the burst, steady and floor figures that
bench.e2e --baselines' table of the sitting reads (those are of the one-instance stack of ./dev up).

Exit codes: 0 every run complete and its figures plausible, 1 a run did not complete (not every task or
acknowledgement arrived), 2 a figure read below what its work costs (bench.e2e's check), 3 the stack did not start.
"""
from __future__ import annotations

import argparse
import asyncio
import math
import os
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

from bench import goals

REPO = Path(__file__).resolve().parents[1]
NODES = 3
# Each service's (and the live figures') first port, and ./dev's defaults, as ./dev reads them.
SERVICE_PORTS = {"intake": 8101, "routing": 8102, "supervision": 8103, "notify": 8104, "live": 8105}
EXIT_NOT_STARTED = 3


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def parse_counts(text: str) -> list[int]:
    """--instances: a comma list of counts, each 1…9 (./dev's bound), in the order given, none twice."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma list of numbers: {text!r}") from None
    if not counts or any(not 1 <= n <= 9 for n in counts) or len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"each count 1…9, none twice: {text!r}")
    return counts


def ports_needed(env: dict[str, str], instances: int, nodes: int = NODES) -> dict[int, str]:
    """port → what ./dev will start there with this many instances on a cluster of `nodes` (its own numbering)."""
    needed: dict[int, str] = {}
    for name, default in SERVICE_PORTS.items():
        first = int(env.get(f"WANGGE_{name.upper()}_PORT") or default)
        for i in range(1, instances + 1):
            needed[first + 1000 * (i - 1)] = f"{name} instance {i}"
    broker = [int(p) for p in env["WANGGE_KAFKA_PORTS"].split(",")] if env.get("WANGGE_KAFKA_PORTS") else \
        [int(env.get("WANGGE_KAFKA_PORT") or 19092) + 100 * i for i in range(nodes)]
    controller = [int(p) for p in env["WANGGE_KAFKA_CONTROLLER_PORTS"].split(",")] \
        if env.get("WANGGE_KAFKA_CONTROLLER_PORTS") else \
        [int(env.get("WANGGE_KAFKA_CONTROLLER_PORT") or 19093) + 100 * i for i in range(nodes)]
    for i, (b, c) in enumerate(zip(broker, controller), 1):
        needed[b], needed[c] = f"Kafka node {i}", f"Kafka node {i}'s controller"
    return needed


def listening(port: int) -> bool:
    """Does something accept connections on 127.0.0.1:port?"""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def dev(env: dict[str, str], *args: str, timeout: float = 900) -> int:
    """./dev ARGS with `env`, its output shown as it comes (./dev says what it starts and waits for)."""
    say(f"./dev {' '.join(args)}  (WANGGE_KAFKA_NODES={env.get('WANGGE_KAFKA_NODES', '1')}, "
        f"WANGGE_INSTANCES={env.get('WANGGE_INSTANCES', '1')})")
    started = time.monotonic()
    try:
        rc = subprocess.run([str(REPO / "dev"), *args], cwd=REPO, env=env, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        say(f"./dev {' '.join(args)} did not end within {timeout:g} s")
        return 124
    say(f"./dev {' '.join(args)}: exit {rc} after {time.monotonic() - started:.0f} s")
    return rc


def dev_env(env: dict[str, str]) -> dict[str, str]:
    """What `./dev env` exports for this stack (the cluster's bootstrap list, the database URL, the keys)."""
    out = subprocess.run([str(REPO / "dev"), "env"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                         check=True).stdout
    exported = {}
    for line in out.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            exported[name] = value
    return exported


@dataclass
class Column:
    """One count of instances: its burst's and its steady run's figures (bench.e2e's), and their exit codes."""

    instances: int
    burst: dict = field(default_factory=dict)
    steady: dict = field(default_factory=dict)
    codes: list[int] = field(default_factory=list)
    note: str = ""


def _fmt(value: object, spec: str = ",.0f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, spec)


def _pair(figures: dict, a: str, b: str) -> str:
    if not figures:
        return "–"
    return f"{_fmt(figures.get(a))} / {_fmt(figures.get(b))}"


def table(columns: list[Column], reports: int, rate: float, seconds: float) -> str:
    """The runs side by side, a row a figure (what `main` prints; a test reads it from given figures)."""
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, cells: list[str]) -> None:
        rows.append((label, cells))

    def heading(label: str) -> None:
        rows.append((label, [""] * len(columns)))

    heading(f"burst of {reports:,} reports")
    row("  cases/s to the owners' topics", [_fmt(c.burst.get("task_rate")) if c.burst else "–" for c in columns])
    row("  acknowledgements/s", [_fmt(c.burst.get("reply_rate")) if c.burst else "–" for c in columns])
    row("  report → task p50 / p99 ms", [_pair(c.burst, "p50_task_ms", "p99_task_ms") for c in columns])
    row("  report → ack  p50 / p99 ms", [_pair(c.burst, "p50_reply_ms", "p99_reply_ms") for c in columns])
    row("  CPU per case ms", [_fmt(c.burst.get("cpu_ms_per_case"), ".2f") if c.burst else "–" for c in columns])
    components = sorted({k for c in columns for run in (c.burst, c.steady) for k in run.get("cpu_ms_by_component", {})},
                        key=lambda k: -max(c.burst.get("cpu_ms_by_component", {}).get(k, 0) for c in columns))
    for name in components:
        cells = []
        for c in columns:
            ms = c.burst.get("cpu_ms_by_component", {}).get(name)
            many = c.burst.get("processes", {}).get(name, 1)
            cells.append("–" if ms is None else f"{ms:.2f}" + (f" (×{many})" if many > 1 else ""))
        row(f"    {name}", cells)
    row("  Kafka records a case written / read",
        [f"{_fmt(c.burst.get('kafka_written'), '.1f')} / {_fmt(c.burst.get('kafka_read'), '.1f')}" if c.burst else "–"
         for c in columns])
    row("  complete, plausible", [_ok(c.burst) for c in columns])
    heading(f"steady {rate:g} reports/s for {seconds:g} s")
    row("  report → task p50 / p99 ms", [_pair(c.steady, "p50_task_ms", "p99_task_ms") for c in columns])
    row("  report → ack  p50 / p99 ms", [_pair(c.steady, "p50_reply_ms", "p99_reply_ms") for c in columns])
    row("  CPU per case ms", [_fmt(c.steady.get("cpu_ms_per_case"), ".2f") if c.steady else "–" for c in columns])
    row("  complete, plausible", [_ok(c.steady) for c in columns])
    if any((c.burst.get("floor") or c.burst.get("baselines")) for c in columns):
        heading("measured right after the burst, same stack")
        row("  floor: CPU a case at the least ms",
            [_fmt((c.burst.get("floor") or {}).get("ms_per_case"), ".2f") for c in columns])
        row("  CPU per case ÷ floor",
            [_fmt(c.burst["cpu_ms_per_case"] / c.burst["floor"]["ms_per_case"], ".1f")
             if (c.burst.get("floor") or {}).get("ms_per_case") else "–" for c in columns])
        row("  PostgreSQL two-row tx/s (pgbench, 32)",
            [_fmt((c.burst.get("baselines") or {}).get("two_row_tx_per_s")) for c in columns])
        row("  PostgreSQL rows/s in 100-row statements",
            [_fmt((c.burst.get("baselines") or {}).get("rows_per_s_in_100_row_batches")) for c in columns])
        row("  Kafka 600-byte records/s, acks=all",
            [_fmt((c.burst.get("baselines") or {}).get("kafka_records_per_s")) for c in columns])
    if any(c.note for c in columns):
        row("note", [c.note or "" for c in columns])
    header = [f"{c.instances} instance{'s' if c.instances > 1 else ''} of each" for c in columns]
    width = max(len(label) for label, _ in rows) + 2
    cell = max(18, *(len(h) for h in header), *(len(x) for _, cells in rows for x in cells)) + 2
    lines = [" " * width + "".join(h.rjust(cell) for h in header)]
    lines += [label.ljust(width) + "".join(x.rjust(cell) for x in cells) for label, cells in rows]
    return "\n".join(lines)


def _ok(figures: dict) -> str:
    if not figures:
        return "not run"
    return f"{'yes' if figures.get('complete') else 'NO'}, {'yes' if figures.get('plausible') else 'NO'}"


def saved_as(instances: int) -> str:
    """The prefix of the names one count's runs are kept under (bench.e2e.keep), apart from the sitting's."""
    return f"instances-{instances}-"


def worst(codes: list[int]) -> int:
    """The run's exit code: the worst of bench.e2e's (0 < 1 incomplete < 2 implausible) and the start's (3)."""
    return max(codes, default=0)


async def measure(column: Column, args: argparse.Namespace) -> None:
    """bench.e2e's burst and steady run against the stack up now (the env already points at it)."""
    from bench import e2e  # after the env is set: get_settings is read once per process
    from shared.settings import get_settings

    get_settings.cache_clear()
    say(f"{column.instances} instance(s): the burst, {args.reports:,} reports after {args.warmup:,} not measured …")
    code, column.burst = await e2e.run_with_figures(args.reports, args.timeout, 0, baselines=args.baselines,
                                                     gateway_ms=args.gateway_ms, warmup=args.warmup,
                                                     floor_records=args.floor_records,
                                                     saved_as=saved_as(column.instances))
    column.codes.append(code)
    steady = round(args.rate * args.seconds)
    if steady:
        say(f"{column.instances} instance(s): steady {args.rate:g}/s for {args.seconds:g} s ({steady:,} reports) …")
        code, column.steady = await e2e.run_with_figures(steady, args.timeout, args.rate, gateway_ms=args.gateway_ms,
                                                          warmup=0, saved_as=saved_as(column.instances))
        column.codes.append(code)


def run(args: argparse.Namespace) -> int:
    base = {**os.environ, "WANGGE_KAFKA_NODES": str(NODES)}
    top = max(args.instances)
    columns: list[Column] = []
    try:
        for n in args.instances:
            column = Column(n)
            columns.append(column)
            env = {**base, "WANGGE_INSTANCES": str(n)}
            # Down first, with the largest count: ./dev finds the instances of an earlier, larger run by their pid
            # files anyway; a clean start makes the runs comparable (fresh processes, the JIT warmed by --warmup).
            dev({**base, "WANGGE_INSTANCES": str(top)}, "down")
            taken = {port: what for port, what in ports_needed(env, n).items() if listening(port)}
            if taken:
                column.note = "ports taken"
                column.codes.append(EXIT_NOT_STARTED)
                say("not started: ports this stack needs are taken by something else (another checkout? move the "
                    "ports): " + ", ".join(f"{p} ({w})" for p, w in sorted(taken.items())))
                break
            if dev(env, "up") != 0:
                column.note = "./dev up failed"
                column.codes.append(EXIT_NOT_STARTED)
                break
            os.environ.update(dev_env(env))
            os.environ["WANGGE_KAFKA_NODES"], os.environ["WANGGE_INSTANCES"] = str(NODES), str(n)
            uvloop.run(measure(column, args))  # as bench.e2e runs: its floor on the services' event loop
    finally:
        if not args.keep_up:
            dev({**base, "WANGGE_INSTANCES": str(top)}, "down")
    text = table(columns, args.reports, args.rate, args.seconds)
    print(f"\none and several instances of each service and of the live figures, {NODES}-broker Kafka cluster "
          f"(replication 3, min.insync 2), {os.cpu_count()} cores, the gateway's stand-in answering in "
          f"{args.gateway_ms:g} ms:\n")
    print(text)
    saved = goals.save("instances", {"columns": [vars(c) for c in columns], "reports": args.reports,
                                     "rate": args.rate, "seconds": args.seconds, "table": text})
    print(f"\n  (kept in {saved})")
    return worst([code for c in columns for code in c.codes])


def main(argv: list[str] | None = None) -> int:
    """Command line entry."""
    parser = argparse.ArgumentParser(prog="python -m bench.instances", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=parse_counts, default=[1, 3], metavar="N,M",
                        help="the counts of instances of each service and of the live figures, one run each "
                        "(default 1,3; each 1…9)")
    parser.add_argument("--reports", type=int, default=3000, help="the burst's reports (default 3,000)")
    parser.add_argument("--rate", type=float, default=200, help="the steady run's reports a second (default 200)")
    parser.add_argument("--seconds", type=float, default=60, help="the steady run's seconds (default 60; 0: no steady run)")
    parser.add_argument("--warmup", type=int, default=500, metavar="N",
                        help="reports sent before the burst, not measured (default 500; see bench.e2e)")
    parser.add_argument("--gateway-ms", type=float, default=goals.GATEWAY_MS, metavar="MS",
                        help="the SMS sink answers each message in MS ms during the runs (default 5)")
    parser.add_argument("--baselines", action="store_true",
                        help="after each burst, the floor and PostgreSQL's and Kafka's baselines on the same stack "
                        "(bench.e2e --baselines)")
    parser.add_argument("--floor-records", type=int, default=20_000, metavar="N",
                        help="with --baselines: records the floor is measured with (default 20,000)")
    parser.add_argument("--timeout", type=float, default=300, help="each run gives up after this many seconds (default 300)")
    parser.add_argument("--keep-up", action="store_true", help="leave the last stack running at the end")
    args = parser.parse_args(argv)
    if args.reports < 1:
        parser.error("--reports: at least 1")
    if args.rate < 0 or args.seconds < 0:
        parser.error("--rate and --seconds: 0 or more (either 0: no steady run)")
    if args.warmup < 0:
        parser.error("--warmup: 0 or more")
    if args.floor_records < 500:
        parser.error("--floor-records: at least 500 (one batch)")
    if not 0 <= args.gateway_ms <= 60000:
        parser.error("--gateway-ms: between 0 and 60000")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

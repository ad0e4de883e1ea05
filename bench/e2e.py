"""End-to-end benchmark: N reports onto wangge.reports → each task on its owner's topic and each reply out.

Runs against the system `./dev up` started (real processes, real Kafka and PostgreSQL):

    .venv/bin/python -m bench.e2e --reports 2000

Prints cases/s, p50/p99 latency to the task and to the reply, and where the time goes: the stages
between the events' own timestamps — each hop split at the handler (the event's occurred_at) and at the outbox relay's
send (the record's CreateTime), so a wait in a relay's wake-up shows apart from one in a consumer's fetch — and the
services' handler time from their /metrics. The SMS sink
answers each message in --gateway-ms (default 5 ms, as the goal says a real gateway does) for the run. The
first --warmup reports (500) are not measured: a broker just started spends more CPU compiling (its JIT) than
serving.
The CPU per case counts every process of this stack (bench.support: the services, the live figures, Kafka,
PostgreSQL with its exited backends), the load and the gateway's stand-in apart. Every figure of work that happened
is checked against the least that work can cost (the floor's units: bench.floor); one below it ends the run in FAIL,
exit code 2, instead of printing a near-zero figure. Ends with issue 17's goals for this kind of run (a burst, or a
steady --rate), each with its figure and PASS or FAIL; with --baselines, it measures the floor and this machine's
PostgreSQL and Kafka alone right after its run, and ends with the table of every goal of the sitting.

The whole sitting, as issue 17 checks it (./dev up first; one after another, never at once):

    .venv/bin/python -m bench.floor
    .venv/bin/python -m bench.http
    .venv/bin/python -m bench.e2e --rate 200 --reports 12000      (a steady 200/s for 60 s)
    .venv/bin/python -m bench.e2e --reports 3000 --baselines      (the burst, then the table of every goal)

Each saves its figures in $WANGGE_STATE_DIR/bench/; the table takes the others' from there. Exit codes: 0 every
figure plausible (goals may still FAIL: figures, not assertions), 1 not every task or reply arrived, 2 a figure read
below what its work costs (the accounting is broken: nothing printed is to be trusted).
"""
from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
import uvloop

from bench import goals
from bench.floor import COUNTS, UnitCosts, floor_figures, load_units, measure_units, print_floor, unit_checks
from bench.goals import Plausible, check_plausible
from bench.support import (HARNESS, MAX_INSTANCES, by_component, component_of, cpu_used, instances_of, kafka_traffic,
                           pct, postgres_writes, read_cpu, stack_roots, state_dir, verdict, wait_caught_up)
from shared.consumer import MAX_POLL_RECORDS
from shared.contracts import Envelope
from shared.settings import Settings, get_settings
from shared.signing import BATCH_LIMIT, SIGNATURE_OPS
from shared.street import load_street
from shared.topics import Topics

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "bench" / "profiles"
SERVICES = ("intake", "routing", "supervision", "notify")  # each must show CPU for the messages it handled


def service_ports(settings: Settings) -> dict[str, int]:
    """Where each service's /metrics answers (this stack's ports, WANGGE_<SERVICE>_PORT)."""
    return {name: getattr(settings, f"{name}_port") for name in SERVICES}


def instance_ports(settings: Settings, *, live: bool = False) -> list[tuple[str, int]]:
    """(service, port) of every instance to read /metrics from: the first on its service's port, and each instance
    i ≥ 2 that ./dev runs (WANGGE_INSTANCES=N: pid file <service>-<i>) on that port + 1000·(i-1); with `live`, the
    live figures' instances too (WANGGE_LIVE_PORT)."""
    run = state_dir() / "run"
    out = []
    ports = service_ports(settings)
    if live:
        ports["live"] = int(os.environ.get("WANGGE_LIVE_PORT", "8105"))
    for name, port in ports.items():
        out.append((name, port))
        out.extend((name, port + 1000 * (i - 1)) for i in range(2, MAX_INSTANCES + 1)
                   if (run / f"{name}-{i}.pid").exists())
    return out


@dataclass
class Trace:
    """What was seen of one report on its way through."""

    sent: float = 0.0
    case_id: str | None = None
    reported_at: float | None = None
    accepted_at: float | None = None
    dispatched_at: float | None = None
    task_seen: float | None = None
    reply_at: float | None = None
    reply_seen: float | None = None
    stamps: dict[str, float] = field(default_factory=dict)


def make_reports(n: int, run: str) -> list[Envelope]:
    """N reports at random registry buildings, over the categories, each with a resident's phone."""
    street = load_street(get_settings().street_dir)
    buildings = street.addresses
    categories = [c for c in street.categories if c != "OT01"]
    rng = random.Random(42)
    out = []
    for i in range(n):
        b = rng.choice(buildings)
        data = {"source": "terminal", "external_id": f"bench-{run}-{i}", "category": rng.choice(categories),
                "description": f"压测案件{i}", "location": {"lon": b.lon, "lat": b.lat}, "address": None,
                "reporter": {"name": "压测", "phone": f"139{rng.randrange(10**8):08d}"},
                "coordinator": {"worker_id": "W001", "device_id": "SZT-0001"}, "media": [],
                "observed_at": "2026-11-27T09:00:00+08:00"}
        out.append(Envelope.new("report.submitted", 1, data, source="bench"))
    return out


async def metrics_texts(settings: Settings, *, live: bool = False) -> list[str]:
    """The /metrics text of every instance that answers (with `live`, the live figures' too)."""
    texts = []
    async with httpx.AsyncClient(timeout=5) as http:
        for _, port in instance_ports(settings, live=live):
            try:
                texts.append((await http.get(f"http://127.0.0.1:{port}/metrics")).text)
            except httpx.HTTPError:
                continue
    return texts


def _matches(texts: list[str], pattern: re.Pattern[str]) -> list[re.Match[str]]:
    return [m for text in texts for m in map(pattern.match, text.splitlines()) if m]


async def scrape_handler_seconds(settings: Settings) -> dict[str, tuple[float, float]]:
    """(sum, count) of wangge_handler_seconds per service and type, from each service's /metrics."""
    totals: dict[str, tuple[float, float]] = {}
    pattern = re.compile(r'^wangge_handler_seconds_(sum|count)\{service="([^"]+)",type="([^"]+)"\} ([0-9.e+-]+)$')
    for m in _matches(await metrics_texts(settings), pattern):
        key = f"{m[2]} {m[3]}"
        s, c = totals.get(key, (0.0, 0.0))
        totals[key] = (s + float(m[4]), c) if m[1] == "sum" else (s, c + float(m[4]))
    return totals


async def scrape_consumed(settings: Settings) -> dict[str, float]:
    """Messages taken from Kafka and handled so far, per service (wangge_messages_consumed_total)."""
    totals: dict[str, float] = {}
    pattern = re.compile(r'^wangge_messages_consumed_total\{[^}]*service="([^"]+)"[^}]*\} ([0-9.e+-]+)$')
    for m in _matches(await metrics_texts(settings), pattern):
        totals[m[1]] = totals.get(m[1], 0.0) + float(m[2])
    return totals


async def unready(settings: Settings) -> dict[str, str]:
    """The instances whose /readyz answers, and not 200 (a live process still recovering its tables after a restart
    is not behind on any topic its group commits, yet its recovery's CPU would be counted in the run): port → why."""
    found = {}
    async with httpx.AsyncClient(timeout=5) as http:
        for name, port in instance_ports(settings, live=True):
            try:
                answer = await http.get(f"http://127.0.0.1:{port}/readyz")
            except httpx.HTTPError:
                continue  # not running: nothing of it can be counted
            if answer.status_code != 200:
                found[f"{name}:{port}"] = answer.text[:200]
    return found


async def caught_up(settings: Settings, when: str, ready_timeout: float = 600.0) -> None:
    """Wait (up to 2 min) until every consumer group of the stack has followed everything, and (up to 10 min) until
    every instance says it is ready; say so if it took a while."""
    waited, behind = await wait_caught_up(settings.kafka_bootstrap, settings.topic_prefix)
    if behind:
        print(f"  {when}: still behind after {waited:.0f} s: {behind} (its work may be counted in the next run)")
    elif waited >= 1:
        print(f"  {when}: waited {waited:.1f} s for every process to follow its events", flush=True)
    started = time.monotonic()
    while (waiting := await unready(settings)) and time.monotonic() - started < ready_timeout:
        await asyncio.sleep(1)
    if waiting:
        print(f"  {when}: not ready after {ready_timeout:.0f} s: {waiting} (its work may be counted in the run)")
    elif time.monotonic() - started >= 1:
        print(f"  {when}: waited {time.monotonic() - started:.1f} s for every instance to be ready "
              "(a live process recovering its tables)", flush=True)


async def scrape_signatures(settings: Settings) -> dict[str, float]:
    """Signatures made and checked so far by every process of the stack, the live figures included
    (wangge_signatures_total by op)."""
    totals = dict.fromkeys(SIGNATURE_OPS, 0.0)
    pattern = re.compile(rf'^wangge_signatures_total\{{op="({"|".join(SIGNATURE_OPS)})"\}} ([0-9.e+-]+)$')
    for m in _matches(await metrics_texts(settings, live=True), pattern):
        totals[m[1]] += float(m[2])
    return totals


def start_profiles(label: str, roots: dict[str, int], form: str = "svg") -> list[tuple[subprocess.Popen, Path]]:
    """py-spy recording each service (and the SMS sink) until stop_profiles: flame graphs in bench/profiles/
    (form raw: collapsed stacks, a line per stack with its samples, to add up)."""
    spy = Path(sys.executable).with_name("py-spy")
    PROFILES.mkdir(exist_ok=True)
    running = []
    for name, pid in roots.items():
        if component_of(name) in ("kafka", "postgresql", "patroni", "etcd", "e2e", "mail_sink"):
            continue
        out = PROFILES / f"e2e-{label}-{name.replace('#', '-')}.{'txt' if form == 'raw' else 'svg'}"
        proc = subprocess.Popen([str(spy), "record", "--pid", str(pid), "--output", str(out), "--nonblocking",
                                 "--rate", "50", "--format", "raw" if form == "raw" else "flamegraph"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        running.append((proc, out))
    return running


def stop_profiles(running: list[tuple[subprocess.Popen, Path]]) -> None:
    """Stop the recordings (py-spy writes its flame graph on SIGINT) and say where they are."""
    for proc, _ in running:
        proc.send_signal(signal.SIGINT)
    for proc, out in running:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        print(f"  flame graph: {out.relative_to(REPO)}" if out.exists() else f"  no flame graph written to {out}")


async def set_gateway_delay(url: str, delay_ms: float) -> bool:
    """Make the SMS sink behind `url` (…/sms) answer in delay_ms; False if it is not the sink."""
    control = url.rsplit("/sms", 1)[0] + "/control"
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            answer = await http.post(control, json={"status": 200, "delay_ms": delay_ms})
    except httpx.HTTPError:
        return False
    return answer.status_code == 200


@dataclass
class Driven:
    """What one stream of reports gave: each report's trace, when the stream started, tasks and replies seen."""

    traces: dict[str, Trace]
    started: float
    done_tasks: int
    done_replies: int
    records_seen: int  # records of these reports' cases this benchmark read (the reports it sent not included)


async def drive(consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, topics: Topics, reports: list[Envelope],
                rate: float, timeout: float, label: str) -> Driven:
    """Send the reports (all at once, or at `rate` a second) and follow each to its task and its reply."""
    n = len(reports)
    traces = {r.data["external_id"]: Trace() for r in reports}
    by_case: dict[str, Trace] = {}
    done_tasks = done_replies = records_seen = 0
    started = time.perf_counter()

    async def send_all() -> None:
        for i, envelope in enumerate(reports):
            if rate:
                # Open loop at a fixed rate: latency measured without a burst's queue in front of it.
                await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            trace = traces[envelope.data["external_id"]]
            trace.sent = time.perf_counter()
            trace.stamps["sent"] = time.time()
            await producer.send(topics.reports, envelope.to_json(), key=envelope.data["external_id"].encode())
        await producer.flush()

    pace = f"at {rate:g}/s" if rate else "as fast as possible"
    print(f"{label} {n} reports to {topics.reports} {pace} …", flush=True)
    sender = asyncio.create_task(send_all())
    deadline = time.perf_counter() + timeout
    last_progress = 0.0
    # The tasks and replies are on other topics than case.reported: one may be fetched before the report's case is
    # known here. Kept until it is, with the moment it was seen.
    early: dict[str, list[tuple[str, dict, float, float, float]]] = {}

    def follow(trace: Trace, kind: str, body: dict, sent_at: float, seen: float, seen_wall: float) -> None:
        nonlocal done_tasks, done_replies, records_seen
        records_seen += 1
        if kind in ("case.accepted", "case.dispatched"):
            name = kind.split(".")[1]
            trace.stamps[name] = datetime.fromisoformat(body["occurred_at"]).timestamp()
            trace.stamps[f"{name}_sent"] = sent_at  # the relay's send (CreateTime)
        elif kind == "task.assigned" and trace.task_seen is None:
            trace.task_seen = seen
            trace.stamps["task_sent"] = sent_at
            trace.stamps["task_seen"] = seen_wall
            done_tasks += 1
        elif kind == "reply.issued" and trace.reply_seen is None:
            trace.reply_seen = seen
            trace.stamps["reply"] = datetime.fromisoformat(body["occurred_at"]).timestamp()
            trace.stamps["reply_sent"] = sent_at
            done_replies += 1

    while (done_tasks < n or done_replies < n) and time.perf_counter() < deadline:
        batch = await consumer.getmany(timeout_ms=200, max_records=2000)
        now, now_wall = time.perf_counter(), time.time()
        for records in batch.values():
            for record in records:
                body = orjson.loads(record.value)
                kind, case_id = body.get("type"), body.get("case_id")
                if kind == "case.reported":
                    trace = traces.get(body["data"].get("external_id"))
                    if trace is None:
                        continue
                    trace.case_id = case_id
                    by_case[case_id] = trace
                    records_seen += 1
                    trace.stamps["reported"] = datetime.fromisoformat(body["occurred_at"]).timestamp()
                    trace.stamps["reported_sent"] = record.timestamp / 1000
                    for seen_early in early.pop(case_id, []):
                        follow(trace, *seen_early)
                    continue
                trace = by_case.get(case_id)
                if trace is None:
                    if case_id:
                        early.setdefault(case_id, []).append((kind, body, record.timestamp / 1000, now, now_wall))
                    continue
                follow(trace, kind, body, record.timestamp / 1000, now, now_wall)
        if now - last_progress > 2:
            last_progress = now
            print(f"  {now - started:5.1f} s: {done_tasks}/{n} tasks, {done_replies}/{n} replies", flush=True)
    await sender
    return Driven(traces, started, done_tasks, done_replies, records_seen)


def plausibility(used: dict[str, float], missing: dict[str, str], handled: dict[str, float], moved: dict[str, float],
                 seen_per_case: float, units: UnitCosts, cases: int) -> tuple[list[Plausible], dict[str, str]]:
    """Each figure of work that happened beside the least that work costs (the floor's units), and the components
    of wangge whose CPU could not be read (not found, restarted during the run)."""
    share = goals.PLAUSIBLE_SHARE
    absent = {name: why for name, why in missing.items() if name not in HARNESS}
    for name in ("kafka", "postgresql", *SERVICES):
        if name not in used and name not in absent:
            absent[name] = "not found: is this stack's ./dev up running? (its pid files in $WANGGE_STATE_DIR/run)"
    per_case = {name: 1e6 * seconds / cases for name, seconds in used.items()}
    written, read = moved["kafka_written"], moved["kafka_read"]
    checks = [
        Plausible(f"PostgreSQL: CPU per case (≥ {share:g} × its rows at the floor)", per_case.get("postgresql", math.nan),
                  share * moved["pg_rows"] * units.row_postgres, "µs"),
        Plausible(f"Kafka: the broker's CPU per case (≥ {share:g} × its records at the floor)",
                  per_case.get("kafka", math.nan),
                  share * (written * units.produce_broker + read * units.consume_broker), "µs"),
        Plausible("Kafka: records written per case (≥ those this benchmark sent, read)", written, seen_per_case, ""),
        Plausible("Kafka: records read per case by the system (≥ the report, the case)", read, 2, ""),
        Plausible("PostgreSQL: rows written per case (≥ the case's own)", moved["pg_rows"], 1, ""),
        # The live figures' agent follows every event of wangge.cases, a case's case.reported and .accepted at least.
        Plausible("live figures: events its faust agent took per case (≥ 2)", moved.get("streamed", math.nan), 2, ""),
        # A consumer handles a batch of up to MAX_POLL_RECORDS in one transaction, so a case's own is shared.
        Plausible("PostgreSQL: transactions per case (≥ its share of a batch's)", moved["pg_commits"],
                  1 / MAX_POLL_RECORDS, ""),
        # case.reported, .accepted and .dispatched at least are signed, and supervision checks each (/metrics): one
        # signature made and checked per batch of at most BATCH_LIMIT records.
        Plausible("signatures made per case (/metrics)", moved.get("signed", math.nan), 3 / BATCH_LIMIT, ""),
        Plausible("signatures checked per case (/metrics)", moved.get("checked", math.nan), 3 / BATCH_LIMIT, ""),
    ]
    for name in SERVICES:
        msgs = handled.get(name, 0.0)
        checks.append(Plausible(f"{name}: messages consumed in the run (/metrics)", msgs, 1, ""))
        checks.append(Plausible(f"{name}: CPU per message consumed (≥ {share:g} × one at the floor)",
                                1e6 * used.get(name, math.nan) / max(msgs, 1), share * units.consume_client, "µs"))
    return checks, absent


async def run(n: int, timeout: float, rate: float, profile: str | None = None, baselines: bool = False,
              profile_format: str = "svg", gateway_ms: float = 5.0, warmup: int = 500,
              floor_records: int = 20_000) -> int:
    """One run, printed; its exit code (see the module's doc)."""
    code, _ = await run_with_figures(n, timeout, rate, profile, baselines, profile_format, gateway_ms, warmup,
                                     floor_records)
    return code


async def run_with_figures(n: int, timeout: float, rate: float, profile: str | None = None, baselines: bool = False,
                           profile_format: str = "svg", gateway_ms: float = 5.0, warmup: int = 500,
                           floor_records: int = 20_000, saved_as: str = "") -> tuple[int, dict]:
    """One run, printed; (its exit code, its figures: what goals.save keeps, with the floor and the baselines
    measured after it under "floor" and "baselines" when asked for) — for bench.instances' side-by-side table.
    `saved_as`: the prefix of the names its figures are kept under (keep()); "" for the sitting's own."""
    settings = get_settings()
    if not await set_gateway_delay(settings.sms_gateway_url, gateway_ms):
        print(f"note: could not set the SMS sink's delay at {settings.sms_gateway_url}; the gateway answers as it does")
    topics = Topics(settings.topic_prefix)
    run_id = uuid.uuid4().hex[:6]
    reports = make_reports(n, run_id)

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=f"bench-{run_id}",
                                auto_offset_reset="latest", enable_auto_commit=False)
    await consumer.start()
    consumer.subscribe(pattern=f"^{re.escape(topics.prefix)}wangge\\.(cases|replies|tasks\\..+)$")
    # Wait for the assignment, so that "latest" is before the first report.
    for _ in range(100):
        await consumer.getmany(timeout_ms=100)
        if consumer.assignment():
            break
    # "latest" is resolved lazily, at a partition's first fetch: on a busy cluster the first reports' case events
    # came before it and were skipped (their cases never traced: 7 of 300 short). Resolved now, before any is sent.
    for tp in consumer.assignment():
        await asyncio.wait_for(consumer.position(tp), 30)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, linger_ms=5)
    await producer.start()
    if warmup:
        # The broker's JIT and the services' first requests cost far more than their steady state: not measured.
        warm = await drive(consumer, producer, topics, make_reports(warmup, f"warm-{run_id}"), 0, timeout,
                           "warming up with")
        print(f"  warmed up: {warm.done_tasks}/{warmup} tasks, {warm.done_replies}/{warmup} replies\n", flush=True)
    ourselves = {"e2e": os.getpid()}  # the load, counted apart (HARNESS)
    await caught_up(settings, "before the run")
    before = await scrape_handler_seconds(settings)
    consumed_before = await scrape_consumed(settings)
    signatures_before = await scrape_signatures(settings)
    traffic_before = await kafka_traffic(settings.kafka_bootstrap)
    rows_before = await postgres_writes(settings.database_url)
    cpu_before = read_cpu(stack_roots(settings, ourselves))
    profiles = start_profiles(profile, stack_roots(settings), profile_format) if profile else []
    driven = await drive(consumer, producer, topics, reports, rate, timeout, "sending")
    traces, started, done_tasks, done_replies = driven.traces, driven.started, driven.done_tasks, driven.done_replies
    await producer.stop()
    await consumer.stop()
    if profiles:
        print("profiles (py-spy, 50 samples/s, while the reports went through):")
        stop_profiles(profiles)
    elapsed_tasks = max((t.task_seen for t in traces.values() if t.task_seen), default=started) - started
    elapsed_replies = max((t.reply_seen for t in traces.values() if t.reply_seen), default=started) - started
    # The run's work is done when every process has followed its events (the live figures too), not when the last
    # reply is out: a process behind would do it after the readings, and the next run would be charged for it.
    await caught_up(settings, "after the run")
    after = await scrape_handler_seconds(settings)
    consumed_after = await scrape_consumed(settings)
    signatures_after = await scrape_signatures(settings)
    # The roots found again: a service restarted during the run has another pid, and cpu_used says so.
    cpu_after = read_cpu(stack_roots(settings, ourselves))
    await set_gateway_delay(settings.sms_gateway_url, 0)
    await asyncio.sleep(11)  # the services' last offsets committed, their idle backends' statistics reported
    traffic_after = await kafka_traffic(settings.kafka_bootstrap)
    rows_after = await postgres_writes(settings.database_url)

    task_lat = [t.task_seen - t.sent for t in traces.values() if t.task_seen]
    reply_lat = [t.reply_seen - t.sent for t in traces.values() if t.reply_seen]
    task_rate = done_tasks / elapsed_tasks if elapsed_tasks else 0
    reply_rate = done_replies / elapsed_replies if elapsed_replies else 0
    print()
    print(f"reports sent         {n}")
    print(f"tasks on owner topic {done_tasks}  in {elapsed_tasks:.2f} s  → {task_rate:.0f} cases/s")
    print(f"replies out          {done_replies}  in {elapsed_replies:.2f} s  → {reply_rate:.0f} replies/s")
    print(f"latency to task      p50 {pct(task_lat, 50):.0f} ms   p99 {pct(task_lat, 99):.0f} ms")
    print(f"latency to reply     p50 {pct(reply_lat, 50):.0f} ms   p99 {pct(reply_lat, 99):.0f} ms")

    def stage(a: str, b: str) -> list[float]:
        return [t.stamps[b] - t.stamps[a] for t in traces.values() if a in t.stamps and b in t.stamps]

    print("\nwhere the time goes (p50 / p99 between the events' timestamps):")
    # Each hop split where a wait can hide: the events' occurred_at is taken when a handler runs, the records'
    # CreateTime when the outbox relay sends them, so (handled → sent) is the commit and the relay's wake-up, and
    # (sent → next handled) is the broker, the consumer's fetch and its batch.
    for label, a, b in [("sent → intake handled", "sent", "reported"),
                        ("intake handled → case sent", "accepted", "accepted_sent"),
                        ("case sent → routing handled", "accepted_sent", "dispatched"),
                        ("routing handled → task sent", "dispatched", "task_sent"),
                        ("task sent → task read here", "task_sent", "task_seen"),
                        ("intake → routing dispatched", "reported", "dispatched"),
                        ("routing dispatched → task read", "dispatched", "task_seen"),
                        ("intake → notify reply issued", "reported", "reply"),
                        ("notify reply issued → sent", "reply", "reply_sent")]:
        values = stage(a, b)
        print(f"  {label:<32} {pct(values, 50):7.0f} ms {pct(values, 99):7.0f} ms  (n={len(values)})")
    print("\nhandler time inside the services during the run (from /metrics):")
    for key in sorted(after):
        s, c = after[key]
        s0, c0 = before.get(key, (0.0, 0.0))
        if c - c0 > 0:
            print(f"  {key:<40} {int(c - c0):6d} msgs  {1000 * (s - s0) / (c - c0):7.2f} ms each  {s - s0:7.2f} s total")
    handled = {name: consumed_after[name] - consumed_before.get(name, 0.0) for name in consumed_after}
    if not handled:
        print(f"  none read: no /metrics answered at {service_ports(settings)}")
    used, missing = cpu_used(cpu_before, cpu_after)
    # Each instance, cluster node and failover member counted, then summed per component (missing stays per process:
    # one instance restarted during the run leaves its component without an honest figure).
    processes = instances_of(used)
    used = by_component(used)
    print(f"\nCPU seconds per component during the run ({os.cpu_count()} cores; every process of this stack, "
          "every instance, node and member, PostgreSQL's exited backends included):")
    cases = max(done_tasks, 1)
    for name, seconds in sorted(used.items(), key=lambda kv: -kv[1]):
        if name not in HARNESS:
            many = f" ×{processes[name]}" if processes.get(name, 1) > 1 else ""
            print(f"  {name + many:<14} {seconds:7.2f} s   {1000 * seconds / cases:6.2f} ms per case")
    for name, why in missing.items():
        print(f"  {name:<14} not counted: {why}")
    total = sum(seconds for name, seconds in used.items() if name not in HARNESS)
    per_case = 1000 * total / cases
    print(f"  {'all':<14} {total:7.2f} s   {per_case:6.2f} ms per case (goal ≤ {goals.CPU_PER_CASE_MS:g} ms)")
    for name, what in HARNESS.items():
        if name in used:
            print(f"  not counted: {name:<10} {used[name]:7.2f} s   {1000 * used[name] / cases:6.2f} ms per case, {what}")
    moved = {"kafka_written": (traffic_after.written - traffic_before.written) / cases,
             "kafka_read": (traffic_after.read - traffic_before.read) / cases,
             "streamed": (traffic_after.streamed - traffic_before.streamed) / cases,
             "table_rows": (traffic_after.table_rows - traffic_before.table_rows) / cases,
             "pg_rows": (rows_after[0] - rows_before[0]) / cases,
             "pg_commits": (rows_after[1] - rows_before[1]) / cases,
             **{op: (signatures_after[op] - signatures_before[op]) / cases for op in SIGNATURE_OPS}}
    print(f"\nwhat a case moved: {moved['kafka_written']:.1f} Kafka records written, {moved['kafka_read']:.1f} read by the "
          f"system's consumer groups, {moved['pg_rows']:.1f} PostgreSQL rows written (inserted, updated, deleted) in "
          f"{moved['pg_commits']:.1f} transactions; {moved['signed']:.2f} signatures made and {moved['checked']:.2f} "
          f"checked, {moved['placed']:.1f} records placed in a signed batch and {moved['proved']:.1f} checked by "
          f"their path; {moved['streamed']:.1f} events taken and {moved['table_rows']:.1f} table rows set by the "
          "live figures' faust agent")

    floor = None
    floor_checks: list[Plausible] = []
    measured: dict[str, float] | None = None
    if baselines:
        from bench.baselines import measure, print_baselines

        print(f"\nthe floor, measured now with what a case of this run moved ({floor_records:,} records, batches of 500) …",
              flush=True)
        floor_units, size, floor_missing = await measure_units(settings, floor_records, 500)
        shares = print_floor(floor_units, size, 500, moved, "this run")
        floor_checks = unit_checks(floor_units)
        missing.update({f"{name} (the floor's)": why for name, why in floor_missing.items()})
        floor = floor_figures(floor_units, size, 500, moved, f"bench.e2e --baselines, run {run_id}", shares,
                              all(c.passed for c in floor_checks) and not floor_missing)
        floor["run_id"] = run_id
        print("\nbeside this machine's own figures, measured now (bench/baselines.py):")
        print(f"  wangge      {task_rate:9,.0f} cases/s to the owner's topic "
              f"({moved['kafka_written']:.1f} Kafka records and {moved['pg_rows']:.1f} rows each; "
              f"goal ≥ {goals.BURST_TASKS_PER_S:,})")
        measured = await measure()
        print_baselines(measured)
    units, units_from = (UnitCosts(**floor["units"]), "the floor measured now") if floor and floor["plausible"] \
        else load_units()
    checks, absent = plausibility(used, missing, handled, moved,
                                  (driven.records_seen + n) / cases, units, cases)
    print(f"  (the floors below: {units_from})")
    plausible = check_plausible(floor_checks + checks, absent)

    everything = done_tasks == n and done_replies == n
    kind = "steady" if rate else "burst"
    print(f"\nissue 17's goals ({kind} run, {n} reports, gateway answering in {gateway_ms:g} ms"
          f"{'' if plausible else '; the accounting is implausible: every goal FAILS'}):")
    if rate:
        verdict(f"p99 report → task < {goals.STEADY_P99_TASK_MS:g} ms at {rate:g}/s", f"{pct(task_lat, 99):.0f} ms",
                plausible and everything and pct(task_lat, 99) < goals.STEADY_P99_TASK_MS)
        verdict(f"p99 report → acknowledgement < {goals.STEADY_P99_ACK_MS:g} ms at {rate:g}/s",
                f"{pct(reply_lat, 99):.0f} ms", plausible and everything and pct(reply_lat, 99) < goals.STEADY_P99_ACK_MS)
        if rate < goals.STEADY_RATE or n / rate < goals.STEADY_SECONDS:
            print(f"  (the goal is at {goals.STEADY_RATE:g} reports/s for {goals.STEADY_SECONDS:g} s: --rate "
                  f"{goals.STEADY_RATE:g} --reports {goals.STEADY_RATE * goals.STEADY_SECONDS:.0f})")
    else:
        verdict(f"every task on its owner's topic at ≥ {goals.BURST_TASKS_PER_S:,} cases/s", f"{task_rate:,.0f} cases/s",
                plausible and done_tasks == n and task_rate >= goals.BURST_TASKS_PER_S)
        verdict(f"every acknowledgement out at ≥ {goals.BURST_ACKS_PER_S:,}/s", f"{reply_rate:,.0f} replies/s",
                plausible and done_replies == n and reply_rate >= goals.BURST_ACKS_PER_S)
    verdict(f"CPU per case, every process ≤ {goals.CPU_PER_CASE_MS:g} ms", f"{per_case:.2f} ms",
            plausible and per_case <= goals.CPU_PER_CASE_MS)
    verdict(f"Kafka records per case < {goals.KAFKA_WRITTEN_BEFORE:g} written, < {goals.KAFKA_READ_BEFORE:g} read",
            f"{moved['kafka_written']:.1f} / {moved['kafka_read']:.1f}", plausible
            and moved["kafka_written"] < goals.KAFKA_WRITTEN_BEFORE and moved["kafka_read"] < goals.KAFKA_READ_BEFORE)

    result = {"run_id": run_id, "kind": kind, "reports": n, "rate": rate, "seconds": n / rate if rate else elapsed_tasks,
              "gateway_ms": gateway_ms, "task_rate": task_rate, "reply_rate": reply_rate,
              "p50_task_ms": pct(task_lat, 50), "p99_task_ms": pct(task_lat, 99),
              "p50_reply_ms": pct(reply_lat, 50), "p99_reply_ms": pct(reply_lat, 99), "cpu_ms_per_case": per_case,
              "cpu_ms_by_component": {k: 1000 * v / cases for k, v in used.items() if k not in HARNESS},
              "processes": processes, **moved, "complete": everything, "plausible": plausible}
    kept = keep(saved_as, kind, result, floor)
    kept_for = f"as {saved_as}{kind}, apart from the sitting's" if saved_as else "for the sitting's table"
    print(f"\n  (figures kept {kept_for}: {kept})")
    if done_tasks == n and plausible:
        COUNTS.parent.mkdir(parents=True, exist_ok=True)
        COUNTS.write_bytes(orjson.dumps({**moved, "run": f"bench.e2e {'steady ' + format(rate, 'g') + '/s' if rate else 'burst'}"
                                                          f" of {n} reports, {datetime.now().astimezone().isoformat(timespec='seconds')}"}))
        print(f"  (what a case moved, saved for bench.floor in {COUNTS})")
    if baselines:
        table = goals.sitting_goals(goals.load(f"{saved_as}burst"), goals.load(f"{saved_as}steady"),
                                    goals.load("http"), floor, measured, this_run=run_id)
        goals.print_goals(table)
        goals.print_components(result["cpu_ms_by_component"], floor)
    figures = {**result, "floor": floor, "baselines": measured}
    if not plausible:
        return goals.EXIT_IMPLAUSIBLE, figures
    return (goals.EXIT_OK if everything else goals.EXIT_INCOMPLETE), figures


def keep(saved_as: str, kind: str, figures: dict, floor: dict | None) -> Path:
    """Keep a run's figures (kind: burst or steady) and the floor measured after it, under names that start with
    `saved_as`: the sitting's table (goals.sitting_goals) reads burst, steady and floor, which only bench.e2e's own
    runs may write; bench.instances keeps its runs on other stacks under its own names (instances.saved_as)."""
    path = goals.save(f"{saved_as}{kind}", figures)
    if floor:
        goals.save(f"{saved_as}floor", floor)
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line entry."""
    parser = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=2000, help="how many reports to send (default 2000)")
    parser.add_argument("--timeout", type=float, default=300, help="give up after this many seconds (default 300)")
    parser.add_argument("--rate", type=float, default=0,
                        help="reports per second (default 0: all at once, to measure throughput)")
    parser.add_argument("--profile", metavar="LABEL",
                        help="record each service with py-spy into bench/profiles/e2e-LABEL-<service>.svg")
    parser.add_argument("--baselines", action="store_true",
                        help="afterwards, measure the floor (bench.floor) and PostgreSQL (pgbench) and Kafka (its producer) "
                        "alone, print them beside, and end with the table of every goal of the sitting")
    parser.add_argument("--floor-records", type=int, default=20_000, metavar="N",
                        help="with --baselines: Kafka records and PostgreSQL messages the floor is measured with "
                        "(default 20,000)")
    parser.add_argument("--profile-format", choices=("svg", "raw"), default="svg",
                        help="svg flame graphs (default), or raw collapsed stacks (.txt) to add up")
    parser.add_argument("--warmup", type=int, default=500, metavar="N",
                        help="first send N reports, not measured (default 500): the broker's JIT compiler and the services' "
                        "first requests cost several times their steady state; 0 measures a cold system")
    parser.add_argument("--gateway-ms", type=float, default=5.0, metavar="MS",
                        help="the SMS sink answers each message in MS milliseconds during the run (default 5; "
                        "set back to 0 afterwards)")
    args = parser.parse_args(argv)
    if not 0 <= args.gateway_ms <= 60000:
        parser.error("--gateway-ms: between 0 and 60000")
    if args.warmup < 0:
        parser.error("--warmup: 0 or more")
    if args.floor_records < 500:
        parser.error("--floor-records: at least 500 (one batch)")
    # On uvloop, as uvicorn runs the services: the floor measured after the run costs what the services' clients do.
    return uvloop.run(run(args.reports, args.timeout, args.rate, args.profile, args.baselines, args.profile_format,
                           args.gateway_ms, args.warmup, args.floor_records))


if __name__ == "__main__":
    sys.exit(main())

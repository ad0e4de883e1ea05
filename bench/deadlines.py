"""Deadline benchmark: a million open cases with clocks in PostgreSQL, and a steady stream of them falling due.

    .venv/bin/python -m bench.deadlines --clocks 1000000 --rate 200 --seconds 60

Needs Kafka and PostgreSQL (`./dev infra` or `./dev up`), and works in its own schema and topic prefix
(bench<tag>_supervision, bench<tag>.wangge.*), dropped afterwards unless --keep. It loads the open cases and
their handling clocks with COPY, sets `rate` of them a second to fall due over `seconds`, starts the real
supervision service as its own process (`python -m services.supervision`) and reads back:

- how late each deadline fired: when PostgreSQL marked it overdue, and when its case.overdue reached Kafka,
  against its due_at (p50, p99, max);
- that each fired exactly once (one case.overdue per case on wangge.cases);
- supervision's memory (resident set) over the run: flat means the clocks stay in PostgreSQL, not in the process.

Goal (issue 8): p99 < 1 s while 200 fall due each second, memory flat. Figures, not assertions.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TAG = uuid.uuid4().hex[:6]
# Before anything reads the settings: this run's own schema and topics.
os.environ["WANGGE_SCHEMA_PREFIX"] = f"bench{TAG}_"
os.environ["WANGGE_TOPIC_PREFIX"] = f"bench{TAG}."

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import orjson  # noqa: E402
from aiokafka import AIOKafkaConsumer  # noqa: E402

from bench.support import cleanup, free_port, pct, stop_process  # noqa: E402
from shared.migrate import migrate_all  # noqa: E402
from shared.settings import get_settings  # noqa: E402
from shared.street import load_street  # noqa: E402
from shared.topics import Topics, ensure_topics  # noqa: E402

CHUNK = 50_000


def rss_mib(pid: int) -> float:
    """Resident set of a process, MiB (Linux /proc)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def load(conn: asyncpg.Connection, n: int, owners: list[str], categories: list[tuple[str, str]],
               grids: list[str]) -> None:
    """n dispatched cases, each with a running handling clock due 1–30 days ahead (reminder not yet due)."""
    rng = random.Random(7)
    now = datetime.now(timezone.utc)
    started = time.monotonic()
    for lo in range(0, n, CHUNK):
        cases, clocks = [], []
        for i in range(lo, min(n, lo + CHUNK)):
            case_id = f"bench-{i:07d}"
            case_no = f"20261201-{i:07d}"
            owner = rng.choice(owners)
            category, _ = rng.choice(categories)
            dispatched = now - timedelta(hours=rng.uniform(0, 48))
            due = now + timedelta(days=rng.uniform(1, 30))
            warn = now + timedelta(hours=rng.uniform(12, 24))
            cases.append((case_id, case_no, "dispatched", category, rng.choice(grids), owner, "normal", "terminal",
                          dispatched, dispatched, dispatched, due, 3, dispatched, 1))
            clocks.append((case_id, "handling", case_no, owner, category, 2.0, "work_days", dispatched, warn, due,
                           "running", f"bench-dispatch-{i}"))
        await conn.copy_records_to_table(
            "cases", records=cases,
            columns=["case_id", "case_no", "state", "category", "unit_grid", "owner", "priority", "source",
                     "reported_at", "accepted_at", "dispatched_at", "due_at", "events_seen", "last_event_at",
                     "dispatch_count"])
        await conn.copy_records_to_table(
            "clocks", records=clocks,
            columns=["case_id", "kind", "case_no", "owner", "category", "limit_value", "limit_unit", "started_at",
                     "warn_at", "due_at", "state", "opened_by"])
        done = min(n, lo + CHUNK)
        rate = done / max(1e-9, time.monotonic() - started)
        print(f"  loaded {done:>9,} / {n:,} cases and clocks ({rate:,.0f}/s)", flush=True)
    print("  ANALYZE…", flush=True)
    await conn.execute("ANALYZE cases; ANALYZE clocks")


async def schedule(conn: asyncpg.Connection, n: int, rate: float, seconds: float, start: datetime) -> list[str]:
    """rate × seconds of the clocks fall due from `start`, evenly: their reminder already sent, deadline set."""
    k = int(rate * seconds)
    ids = [f"bench-{i:07d}" for i in random.Random(11).sample(range(n), k)]
    dues = [start + timedelta(seconds=j / rate) for j in range(k)]
    await conn.execute(
        """UPDATE clocks c SET due_at = s.due, warn_at = s.due - interval '1 hour', warned_at = s.due - interval '1 hour'
           FROM unnest($1::text[], $2::timestamptz[]) AS s(case_id, due)
           WHERE c.case_id = s.case_id AND c.kind = 'handling'""", ids, dues)
    await conn.execute("UPDATE cases c SET due_at = s.due FROM unnest($1::text[], $2::timestamptz[]) AS s(case_id, due) "
                       "WHERE c.case_id = s.case_id", ids, dues)
    return ids


async def watch_overdue(bootstrap: str, topic: str, seen: dict[str, list[float]], stop: asyncio.Event) -> None:
    """Record when each case.overdue reaches Kafka (wall clock), per case."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"bench-deadlines-{TAG}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            arrived = time.time()
            for records in batch.values():
                for record in records:
                    event = orjson.loads(record.value)
                    if event.get("type") == "case.overdue":
                        seen.setdefault(event["case_id"], []).append(arrived)
    finally:
        await consumer.stop()


async def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    topics = Topics(settings.topic_prefix)
    street = load_street(settings.street_dir)
    owners = sorted({c.owner for c in street.categories.values() if c.owner != "community"}
                    | {g.code for g in street.level("community")})
    categories = [(code, c.owner) for code, c in street.categories.items()]
    grids = [g.code for g in street.level("unit")]
    print(f"bench.deadlines {TAG}: {args.clocks:,} open cases, {args.rate:g} falling due a second for {args.seconds:g} s")
    await ensure_topics(settings.kafka_bootstrap, topics.fixed() + [topics.for_owner(o) for o in owners + ["zhzx", "leadership"]])
    await migrate_all(("supervision",))
    conn = await asyncpg.connect(settings.database_url, server_settings={"search_path": settings.schema("supervision")})
    proc = None
    stop = asyncio.Event()
    seen: dict[str, list[float]] = {}
    try:
        t0 = time.monotonic()
        await load(conn, args.clocks, owners, categories, grids)
        print(f"  loaded in {time.monotonic() - t0:.0f} s")
        start = datetime.now(timezone.utc) + timedelta(seconds=args.lead)
        ids = await schedule(conn, args.clocks, args.rate, args.seconds, start)
        watcher = asyncio.create_task(watch_overdue(settings.kafka_bootstrap, topics.cases, seen, stop))

        port = free_port()
        env = dict(os.environ, WANGGE_SUPERVISION_PORT=str(port), WANGGE_LOG_LEVEL="WARNING")
        proc = subprocess.Popen([sys.executable, "-m", "services.supervision", "--port", str(port)], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=open(REPO / ".local" / f"bench-deadlines-{TAG}.log", "wb"))
        async with httpx.AsyncClient(timeout=2) as http:
            for _ in range(300):
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None:
                    print(f"supervision exited ({proc.returncode}); see .local/bench-deadlines-{TAG}.log")
                    return 1
                await asyncio.sleep(0.1)
        print(f"  supervision up (pid {proc.pid}); the first deadline falls due in "
              f"{(start - datetime.now(timezone.utc)).total_seconds():.1f} s")

        profiler = None
        if args.profile:
            # A flame graph of supervision while the deadlines fall due (py-spy samples the running process).
            out = REPO / "bench" / "profiles" / ("deadlines-supervision.txt" if args.profile == "raw" else "deadlines-supervision.svg")
            out.parent.mkdir(parents=True, exist_ok=True)
            profiler = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(proc.pid),
                                         "--duration", str(int(args.seconds)), "--rate", "50", "--output", str(out),
                                         "--nonblocking", *(["--format", "raw"] if args.profile == "raw" else [])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        memory: list[tuple[float, float]] = []
        end = start + timedelta(seconds=args.seconds + args.grace)
        while datetime.now(timezone.utc) < end:
            memory.append((time.monotonic(), rss_mib(proc.pid)))
            fired = await conn.fetchval("SELECT count(*) FROM clocks WHERE overdue_at IS NOT NULL AND case_id = ANY($1)", ids)
            print(f"  {datetime.now(timezone.utc).strftime('%H:%M:%S')}  fired {fired:>6,} / {len(ids):,}  "
                  f"on Kafka {len(seen):>6,}  supervision RSS {memory[-1][1]:.0f} MiB", flush=True)
            if fired == len(ids) and len(seen) >= len(ids):
                break
            await asyncio.sleep(1)
        await asyncio.sleep(1)
        stop.set()
        await asyncio.wait_for(watcher, 10)
        if profiler is not None:
            profiler.wait(60)
            print(f"profile of supervision: {out.relative_to(REPO)}")

        rows = await conn.fetch("SELECT case_id, due_at, overdue_at FROM clocks WHERE case_id = ANY($1)", ids)
        db_delay = [(r["overdue_at"] - r["due_at"]).total_seconds() for r in rows if r["overdue_at"]]
        kafka_delay = [seen[r["case_id"]][0] - r["due_at"].timestamp() for r in rows if r["case_id"] in seen]
        twice = sum(1 for v in seen.values() if len(v) > 1)
        early = sum(1 for d in db_delay if d < 0)
        steady = [m for t, m in memory if t - memory[0][0] > 5] or [m for _, m in memory]
        growth = (steady[-1] - steady[0]) if steady else float("nan")
        p99 = pct(kafka_delay, 99)
        print()
        print(f"open clocks in PostgreSQL           {args.clocks:,}")
        print(f"deadlines due in the window         {len(ids):,} ({args.rate:g}/s for {args.seconds:g} s)")
        print(f"fired (marked overdue)              {len(db_delay):,}   early: {early}")
        print(f"case.overdue on Kafka               {len(kafka_delay):,}   more than once: {twice}")
        print(f"delay due → marked   p50 {pct(db_delay, 50):7.0f} ms  p99 {pct(db_delay, 99):7.0f} ms  max {pct(db_delay, 100):7.0f} ms")
        print(f"delay due → on Kafka p50 {pct(kafka_delay, 50):7.0f} ms  p99 {p99:7.0f} ms  max {pct(kafka_delay, 100):7.0f} ms")
        print(f"supervision RSS      start {steady[0]:.0f} MiB  end {steady[-1]:.0f} MiB  max {max(steady):.0f} MiB  "
              f"(growth {growth:+.0f} MiB)")
        ok = (len(kafka_delay) == len(ids) and twice == 0 and early == 0 and p99 < 1000
              and growth < max(20.0, 0.1 * steady[0]))
        print(f"goal: every deadline once, p99 < 1000 ms, memory flat → {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1
    finally:
        stop.set()
        stop_process(proc)
        await conn.close()
        if not args.keep:
            await cleanup(settings, topics)
            print(f"(dropped schema {settings.schema('supervision')} and topics {topics.prefix}*)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.deadlines",
        description="A million open clocks in PostgreSQL and `rate` a second falling due: how late each "
                    "deadline fires (p50/p99) and whether supervision's memory stays flat. Needs Kafka and "
                    "PostgreSQL running (./dev infra); uses its own schema and topics, dropped afterwards.")
    parser.add_argument("--clocks", type=int, default=1_000_000, help="open cases with a running clock (default 1,000,000)")
    parser.add_argument("--rate", type=float, default=200.0, help="deadlines falling due per second (default 200)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long they keep falling due (default 60)")
    parser.add_argument("--lead", type=float, default=15.0, help="seconds from the load to the first deadline (default 15)")
    parser.add_argument("--grace", type=float, default=20.0, help="seconds to wait after the last deadline (default 20)")
    parser.add_argument("--keep", action="store_true", help="keep the schema and topics for a look afterwards")
    parser.add_argument("--profile", nargs="?", const="svg", choices=("svg", "raw"),
                        help="record a flame graph of supervision with py-spy into bench/profiles/ (raw: collapsed stacks)")
    args = parser.parse_args(argv)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())

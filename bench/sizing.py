"""What one case leaves behind: Kafka records and bytes per topic, PostgreSQL bytes per table — the figures
docs/SIZING.md is computed from.

Runs against the system `./dev up` started (real services, Kafka and PostgreSQL, the demo street and its demo
credentials), best on a fresh state folder:

    .venv/bin/python -m bench.sizing --cases 2000 --full 200

1. reads what is there (every table's pg_total_relation_size, every topic's end offsets and the bytes of its log
   segments in the broker's data folder);
2. sends --cases reports over intake's HTTP API (a terminal's credential, each with a resident's phone) and waits
   until each is dispatched and its acknowledgement sent: the first leg every case takes;
3. reads again, then takes --full of those cases through the rest of the closed loop over HTTP as the people would
   — the owner signs (task.accepted), resolves (task.resolved), the operator checks on site (passed: closed), the
   resident answers the survey (satisfied) — and waits until each is closed and its survey answered;
4. reads again, and prints (and saves in $WANGGE_STATE_DIR/bench/sizing.json) the differences per case.

Kafka's bytes are those of its log segments on this single development broker (one copy; a cluster keeps three),
uncompressed as the producers send them (shared/kafka.py). PostgreSQL's are the tables' and their indexes' and
TOAST's pages, dead rows included as autovacuum leaves them.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.lag import end_offsets
from shared.settings import Settings, get_settings
from shared.street import load_street

OPERATOR = "demo-operator-token"
TERMINAL = "demo-terminal-token"
CONCURRENCY = 16


@dataclass
class Reading:
    """What the stack holds at one moment."""

    tables: dict[str, int] = field(default_factory=dict)  # schema.table → bytes (table + indexes + TOAST)
    records: dict[str, int] = field(default_factory=dict)  # topic → records written so far (end offsets)
    log_bytes: dict[str, int] = field(default_factory=dict)  # topic → bytes of its log segments


def kafka_data_dir(settings: Settings) -> Path:
    """The single development broker's data folder (deploy/local/kafka.sh)."""
    state = Path(os.environ.get("WANGGE_STATE_DIR") or Path(__file__).resolve().parents[1] / ".local")
    return state / "kafka" / "data"


async def read(settings: Settings) -> Reading:
    reading = Reading()
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT schemaname, relname, pg_total_relation_size(relid) AS bytes FROM pg_stat_user_tables")
        reading.tables = {f"{r['schemaname']}.{r['relname']}": int(r["bytes"]) for r in rows}
    finally:
        await conn.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    await admin.start()
    try:
        topics = sorted(t for t in await consumer.topics() if not t.startswith("__"))
        partitions = [TopicPartition(t["topic"], p["partition"]) for t in await admin.describe_topics(topics)
                      for p in t["partitions"]]
        for tp, offset in (await end_offsets(consumer, partitions)).items():
            reading.records[tp.topic] = reading.records.get(tp.topic, 0) + offset
    finally:
        await admin.close()
        await consumer.stop()
    data = kafka_data_dir(settings)
    for folder in data.iterdir() if data.is_dir() else []:
        topic, _, partition = folder.name.rpartition("-")
        if folder.is_dir() and partition.isdigit():
            size = sum(f.stat().st_size for f in folder.glob("*.log"))
            reading.log_bytes[topic] = reading.log_bytes.get(topic, 0) + size
    return reading


def difference(before: Reading, after: Reading, cases: int) -> dict[str, Any]:
    """Per case: bytes per table (grown ones), records and bytes per topic (written ones), and the totals."""
    tables = {name: (after.tables[name] - before.tables.get(name, 0)) / cases for name in after.tables}
    tables = {k: v for k, v in sorted(tables.items(), key=lambda kv: -kv[1]) if v > 0}
    topics: dict[str, dict[str, float]] = {}
    for topic in sorted(after.records):
        records = after.records[topic] - before.records.get(topic, 0)
        if records > 0:
            size = after.log_bytes.get(topic, 0) - before.log_bytes.get(topic, 0)
            # Every owner's task topic as one: a case goes to one owner, which one is the street's business.
            name = "wangge.tasks.*" if topic.startswith("wangge.tasks.") else topic
            total = topics.setdefault(name, {"records": 0.0, "bytes": 0.0})
            total["records"] += records
            total["bytes"] += size
    for total in topics.values():
        total["bytes_per_record"] = total["bytes"] / total["records"]
        total["records"] /= cases
        total["bytes"] /= cases
    return {
        "cases": cases,
        "postgres_bytes": sum(tables.values()),
        "postgres_by_schema": {schema: sum(v for k, v in tables.items() if k.split(".")[0] == schema)
                               for schema in sorted({k.split(".")[0] for k in tables})},
        "postgres_tables": tables,
        "kafka_records": sum(t["records"] for t in topics.values()),
        "kafka_bytes": sum(t["bytes"] for t in topics.values()),
        "kafka_topics": topics,
    }


async def until(what: str, check, timeout: float, interval: float = 0.5) -> None:
    """Wait until `await check()` is true, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(interval)


async def settled(settings: Settings, quiet: float = 3.0, timeout: float = 120.0) -> None:
    """Until no topic has grown for `quiet` seconds (the relays and the replies have caught up)."""
    last, since = None, time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = (await read(settings)).records
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"Kafka still growing after {timeout:g} s")


@dataclass
class Case:
    case_no: str
    phone: str
    owner: str | None = None


async def report_cases(settings: Settings, n: int, run: str) -> list[Case]:
    """N reports over intake's HTTP API, as a terminal sends them; each case as dispatched, with its owner."""
    street = load_street(settings.street_dir)
    categories = [c for c in street.categories if c != "OT01"]
    rng = random.Random(20)
    limit = asyncio.Semaphore(CONCURRENCY)
    cases: list[Case] = []
    base = f"http://127.0.0.1:{settings.intake_port}"
    async with httpx.AsyncClient(base_url=base, timeout=30, headers={"Authorization": f"Bearer {TERMINAL}"}) as http:
        async def one(i: int) -> None:
            b = rng.choice(street.addresses)
            phone = f"138{rng.randrange(10**8):08d}"
            body = {"source": "terminal", "external_id": f"sizing-{run}-{i}", "category": rng.choice(categories),
                    "description": f"占道经营，影响通行（规模测算 {i}）", "location": {"lon": b.lon, "lat": b.lat},
                    "address": None, "reporter": {"name": "居民", "phone": phone},
                    "coordinator": {"worker_id": "W001", "device_id": "SZT-0001"}, "media": [],
                    "observed_at": "2026-12-06T09:00:00+08:00"}
            async with limit:
                answer = await http.post("/api/v1/reports", json=body)
            answer.raise_for_status()
            cases.append(Case(answer.json()["case_no"], phone))
        await asyncio.gather(*(one(i) for i in range(n)))
    return cases


async def states(settings: Settings, cases: list[Case]) -> dict[str, dict]:
    """Each case's view from supervision (operator)."""
    base = f"http://127.0.0.1:{settings.supervision_port}"
    limit = asyncio.Semaphore(CONCURRENCY)
    found: dict[str, dict] = {}
    async with httpx.AsyncClient(base_url=base, timeout=30, headers={"Authorization": f"Bearer {OPERATOR}"}) as http:
        async def one(case: Case) -> None:
            async with limit:
                answer = await http.get(f"/api/v1/cases/{case.case_no}")
            if answer.status_code == 200:
                found[case.case_no] = answer.json()
        await asyncio.gather(*(one(c) for c in cases))
    return found


async def wait_for_state(settings: Settings, cases: list[Case], wanted: set[str], timeout: float) -> None:
    pending = list(cases)

    async def check() -> bool:
        nonlocal pending
        seen = await states(settings, pending)
        for case in pending:
            view = seen.get(case.case_no) or {}
            case.owner = view.get("owner") or case.owner
        pending = [c for c in pending if (seen.get(c.case_no) or {}).get("state") not in wanted]
        return not pending

    await until(f"cases in {sorted(wanted)}", check, timeout, interval=2.0)


async def close_the_loop(settings: Settings, cases: list[Case]) -> None:
    """Each case signed, resolved, checked and answered, over HTTP as the people do."""
    sup = f"http://127.0.0.1:{settings.supervision_port}"
    notify = f"http://127.0.0.1:{settings.notify_port}"
    limit = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(timeout=30) as http:
        async def post(url: str, token: str | None, body: dict) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with limit:
                answer = await http.post(url, json=body, headers=headers)
            if answer.status_code >= 300:
                raise RuntimeError(f"POST {url}: {answer.status_code} {answer.text[:300]}")
            return answer

        async def owner_steps(case: Case) -> None:
            url, token = f"{sup}/api/v1/tasks/{case.case_no}/updates", f"demo-owner-{case.owner}"
            await post(url, token, {"type": "task.accepted"})
            await post(url, token, {"type": "task.resolved", "result": "已清理占道摊点，恢复通行", "media": []})
        await asyncio.gather(*(owner_steps(c) for c in cases))
        await wait_for_state(settings, cases, {"resolved"}, 300)
        await asyncio.gather(*(post(f"{sup}/api/v1/cases/{c.case_no}/check", OPERATOR,
                                    {"passed": True, "note": "现场核查已整改"}) for c in cases))
        await wait_for_state(settings, cases, {"closed"}, 300)
        await settled(settings)  # the survey SMS sent before it is answered
        await asyncio.gather(*(post(f"{notify}/api/v1/surveys/{c.case_no}", None,
                                    {"phone": c.phone, "verdict": "satisfied", "comment": ""}) for c in cases))


def show(title: str, figures: dict[str, Any]) -> None:
    print(f"\n{title} ({figures['cases']} cases)")
    print(f"  Kafka: {figures['kafka_records']:.2f} records, {figures['kafka_bytes']:.0f} bytes a case")
    for topic, t in figures["kafka_topics"].items():
        print(f"    {topic:<40} {t['records']:6.2f} records {t['bytes']:8.0f} B  ({t['bytes_per_record']:.0f} B each)")
    print(f"  PostgreSQL: {figures['postgres_bytes']:.0f} bytes a case "
          f"({', '.join(f'{k} {v:.0f}' for k, v in figures['postgres_by_schema'].items())})")
    for table, size in list(figures["postgres_tables"].items())[:12]:
        print(f"    {table:<40} {size:8.0f} B")


async def run(cases: int, full: int, timeout: float) -> int:
    settings = get_settings()
    run_id = f"{int(time.time())}"
    await settled(settings)
    start = await read(settings)
    began = time.monotonic()
    sent = await report_cases(settings, cases, run_id)
    await wait_for_state(settings, sent, {"dispatched"}, timeout)
    await settled(settings)
    first = await read(settings)
    first_leg_seconds = time.monotonic() - began
    closed = [c for c in sent[:full] if c.owner]
    began = time.monotonic()
    await close_the_loop(settings, closed)
    await settled(settings)
    last = await read(settings)
    figures = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "first_leg": difference(start, first, len(sent)),
        "first_leg_seconds": first_leg_seconds,
        "rest_of_loop": difference(first, last, len(closed)) if closed else None,
        "rest_of_loop_seconds": time.monotonic() - began,
    }
    show("reported → accepted → dispatched → acknowledged", figures["first_leg"])
    if closed:
        show("signed → resolved → checked → closed → survey answered", figures["rest_of_loop"])
    out = Path(os.environ.get("WANGGE_STATE_DIR") or ".local") / "bench" / "sizing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=1, ensure_ascii=False))
    print(f"\nsaved in {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sizing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000, help="reports to send (default 2000)")
    parser.add_argument("--full", type=int, default=200, help="of those, cases taken through the whole loop (200)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for the reports to be dispatched")
    args = parser.parse_args(argv)
    if args.cases < 1 or not 0 <= args.full <= args.cases:
        parser.error("--cases at least 1, --full between 0 and --cases")
    return asyncio.run(run(args.cases, args.full, args.timeout))


if __name__ == "__main__":
    sys.exit(main())

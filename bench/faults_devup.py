"""The faults a street meets, on the system `./dev up` runs — as an operator would try it, with no hand between.

    ./dev up
    .venv/bin/python -m bench.faults_devup --reports 6000 --rate 200 --order services,kafka,postgres --gap 2

Reports are published on wangge.reports at the rate — at least --reports of them, and on until the last fault is
over, so that every fault falls inside the stream — while the parts named by --order are killed with SIGKILL,
one after another: each service (and the live process), the broker, PostgreSQL. Every kill is followed by
`./dev up`, which brings back what is down; the broker and PostgreSQL are killed --gap seconds apart (both down
before `./dev up` runs), the overlap that once left intake stalled until restarted by hand. Then nothing is
touched: every report must become exactly one case, every consumer group of the system must be back at lag 0,
and every service's /readyz must say ready, within --settle seconds. The exit code says whether it did.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.contracts import Envelope
from shared.lag import group_lags
from shared.settings import Settings
from shared.topics import Topics

REPO = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("WANGGE_STATE_DIR", REPO / ".local"))
SERVICES = {name: int(os.environ.get(f"WANGGE_{name.upper()}_PORT", port))
            for name, port in (("intake", 8101), ("routing", 8102), ("supervision", 8103), ("notify", 8104),
                               ("live", 8105))}
POINT = {"lon": 117.575168, "lat": 34.871845}
CATEGORIES = ("CM04", "MD01", "CM02")


# The clients' own complaints while the broker is down are the drill's expected weather, not its output.
logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def kill(part: str) -> None:
    """SIGKILL one part of the running system by the pid `./dev` recorded."""
    if part == "postgres":
        out = subprocess.run([str(REPO / "deploy/local/postgres.sh"), "status"], capture_output=True, text=True).stdout
        pid = int(out.split("pid ", 1)[1].split(")", 1)[0].split()[0])
    else:
        pid = int((STATE / "run" / f"{part}.pid").read_text().strip())
    os.kill(pid, signal.SIGKILL)
    say(f"killed {part} (pid {pid})")


async def dev_up() -> None:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(str(REPO / "dev"), "up", stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        say(f"./dev up failed ({proc.returncode}): {err.decode()[-500:]}")
    else:
        say(f"./dev up brought everything back ({time.monotonic() - started:.0f} s)")


async def faults(order: list[str], gap: float, seconds: float) -> None:
    steps = [part for part in order if part != "services"]
    parts = [*SERVICES] if "services" in order else []
    slots = len(parts) + (1 if steps else 0) + 1
    for part in parts:
        await asyncio.sleep(seconds / slots)
        kill(part)
        await dev_up()
    if steps:
        await asyncio.sleep(seconds / slots)
        for n, part in enumerate(steps):
            if n:
                await asyncio.sleep(gap)
            kill(part)
        await dev_up()


async def _deliver(producer: AIOKafkaProducer, topic: str, value: bytes, key: bytes) -> None:
    """One report delivered, as a bridge delivers it: sent again until the broker takes it (the same report: intake
    keeps one). Without this, a broker away longer than the producer's timeout made the drill's own reports expire
    unsent (or its publisher stop), and the count blamed wangge for them."""
    while True:
        try:
            await (await producer.send(topic, value, key=key))
            return
        except KafkaError:
            await asyncio.sleep(1)


async def publish(settings: Settings, topics: Topics, prefix: str, at_least: int, rate: float,
                  faults_over: asyncio.Event) -> int:
    """Publish at `rate` until `at_least` are out and the faults are over; returns how many were published."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True,
                                request_timeout_ms=120000, retry_backoff_ms=500)
    await asyncio.wait_for(producer.start(), 30)
    n = 0
    deliveries: list[asyncio.Task[None]] = []
    try:
        started = time.monotonic()
        while n < at_least or not faults_over.is_set():
            external_id = f"{prefix}{n:06d}"
            body = {"source": "hotline", "external_id": external_id, "category": CATEGORIES[n % 3],
                    "description": f"故障演练 {n}", "location": POINT, "address": None,
                    "reporter": {"name": "居民", "phone": f"139{n % 10**8:08d}"}, "coordinator": None, "media": [],
                    "observed_at": "2026-11-28T09:00:00+08:00"}
            envelope = Envelope.new("report.submitted", 1, body, source="hotline-bridge")
            deliveries.append(asyncio.create_task(
                _deliver(producer, topics.reports, envelope.to_json(), external_id.encode())))
            n += 1
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        await asyncio.gather(*deliveries)
    finally:
        for delivery in deliveries:
            delivery.cancel()
        await producer.stop()
    return n


async def state(settings: Settings, prefix: str) -> tuple[int, int, dict[str, int], dict[str, str]]:
    """(reports that are cases, cases counted twice, lag per consumer group, /readyz per service)."""
    conn = await asyncpg.connect(settings.database_url, timeout=5)
    try:
        cases, doubled = await conn.fetchrow(
            """SELECT count(DISTINCT external_id), count(*) - count(DISTINCT external_id)
               FROM intake.reports WHERE external_id LIKE $1""", prefix + "%")
    finally:
        await conn.close()
    lags = await group_lags(settings.kafka_bootstrap, lambda group: group.startswith("wangge-"), timeout=15)
    ready: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=5) as http:
        for name, port in SERVICES.items():
            try:
                answer = await http.get(f"http://127.0.0.1:{port}/readyz")
                ready[name] = "ready" if answer.status_code == 200 else str(answer.json().get("checks"))
            except httpx.HTTPError as exc:
                ready[name] = f"no answer ({exc!r})"
    return cases, doubled, lags, ready


async def run(args: argparse.Namespace) -> int:
    settings = Settings()
    topics = Topics(settings.topic_prefix)
    prefix = f"drill-{uuid.uuid4().hex[:6]}-"
    order = args.order.split(",")
    seconds = args.reports / args.rate
    say(f"at least {args.reports:,} reports at {args.rate:g}/s, on until the faults are over; faults: "
        f"{' → '.join(order)} (the broker and PostgreSQL {args.gap:g} s apart), each followed by ./dev up")
    over = asyncio.Event()

    async def faults_then_over() -> None:
        try:
            await faults(order, args.gap, seconds)
        finally:
            over.set()

    published, _ = await asyncio.gather(publish(settings, topics, prefix, args.reports, args.rate, over),
                                        faults_then_over())
    done_at = time.monotonic()
    say(f"{published:,} reports published; from now on nothing is touched")
    last: tuple[int, int, dict[str, int], dict[str, str]] | None = None
    while time.monotonic() - done_at < args.settle:
        try:
            last = await asyncio.wait_for(state(settings, prefix), 60)
        except Exception as exc:  # noqa: BLE001 — the system may still be coming back: ask again
            say(f"not measured yet ({exc!r})")
            await asyncio.sleep(5)
            continue
        cases, doubled, lags, ready = last
        behind = {g: lag for g, lag in lags.items() if lag}
        if cases == published and not behind and all(v == "ready" for v in ready.values()):
            say(f"PASS: {published:,} reports, {cases:,} cases, {doubled} doubled; every group at lag 0 and every "
                f"service ready {time.monotonic() - done_at:.0f} s after the last report")
            return 0 if doubled == 0 else 1
        say(f"{cases:,}/{published:,} cases; behind: {behind or 'none'}; "
            f"not ready: {({k: v for k, v in ready.items() if v != 'ready'}) or 'none'}")
        await asyncio.sleep(10)
    say(f"FAIL: not settled {args.settle:g} s after the last report: {last}")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults_devup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=6000,
                        help="reports published at least, and more until the faults are over (default 6,000)")
    parser.add_argument("--rate", type=float, default=200, help="reports per second (default 200)")
    parser.add_argument("--order", default="services,kafka,postgres",
                        help="what is killed, in order: services (each service and the live process, one by one), "
                             "kafka, postgres — e.g. postgres,kafka (default services,kafka,postgres)")
    parser.add_argument("--gap", type=float, default=2.0, help="seconds between the broker's and PostgreSQL's kill")
    parser.add_argument("--settle", type=float, default=300.0,
                        help="seconds after the last report for everything to be counted and caught up (default 300)")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

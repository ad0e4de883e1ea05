"""Intake's consumers on a backlog: N reports waiting on wangge.reports when intake starts, in-process.

    .venv/bin/python -m bench.intake_backlog --reports 5000        (./dev infra is enough; eval "$(./dev env)")

Publishes N unsigned reports (each inside the street, complete: every one becomes an accepted case) under a topic and
schema prefix of its own, then starts intake (its runtime alone, no HTTP) and times:
- reports → cases: until every report is a row of reports (the wangge.reports consumer);
- case steps: until intake's own `-cases` reader has recorded each case.accepted as an Open311 update.
CPU: this process (intake's consumers, its relay, the publisher's leftovers are outside the timed span) and the
PostgreSQL cluster serving WANGGE_DATABASE_URL (bench.support's accounting), per report. Run it on two checkouts in the
same minute to compare them (the figures move with the machine's load). Figures, not assertions.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

from aiokafka import AIOKafkaProducer

from bench.support import cleanup, postmaster_pid, read_cpu
from shared.clock import now
from shared.contracts import Envelope
from shared.settings import Settings
from shared.topics import Topics, ensure_topics


def reports(count: int, run: str) -> list[Envelope]:
    return [Envelope.new("report.submitted", 1, {
        "source": "terminal", "external_id": f"{run}-{i}", "category": "CM04", "description": "垃圾箱破损，垃圾外溢",
        "location": {"lon": 117.575168, "lat": 34.871845}, "reporter": {"name": "李先生", "phone": "13900001001"},
        "observed_at": now().isoformat()}, source="bench") for i in range(count)]


async def publish(settings: Settings, topics: Topics, envelopes: list[Envelope]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, linger_ms=20)
    await producer.start()
    try:
        for envelope in envelopes:
            await producer.send(topics.reports, envelope.to_json(), key=envelope.data["external_id"].encode())
        await producer.flush()
    finally:
        await producer.stop()


async def until(check, timeout: float) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout:
            raise TimeoutError("the backlog was not worked off in time")
        await asyncio.sleep(0.05)
    return time.monotonic()


async def run(count: int, timeout: float) -> None:
    from services.intake.bootstrap import build

    tag = uuid.uuid4().hex[:8]
    settings = Settings().model_copy(update={"topic_prefix": f"b{tag}.", "schema_prefix": f"b{tag}_"})
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings.kafka_bootstrap, topics.fixed())
    try:
        await publish(settings, topics, reports(count, tag))
        service = build(settings, manage_runtime=False)
        roots = {"intake (this process)": os.getpid()}
        if (pid := postmaster_pid(settings.database_url)) is not None:
            roots["postgresql"] = pid
        before, started = read_cpu(roots), time.monotonic()
        await asyncio.wait_for(service.runtime.start(), 60)
        try:
            pool = service.runtime.pool
            cases_at = await until(lambda: _at_least(pool, "SELECT count(*) FROM reports", count), timeout)
            steps_at = await until(lambda: _at_least(
                pool, "SELECT count(*) FROM case_updates WHERE event_type = 'case.accepted'", count), timeout)
            after = read_cpu(roots)
        finally:
            await asyncio.wait_for(service.runtime.stop(), 30)
        tick = os.sysconf("SC_CLK_TCK")
        print(f"{count:,} reports waiting; intake started (its start included in the times):")
        print(f"  reports → cases      {cases_at - started:6.2f} s   {count / (cases_at - started):7.0f} reports/s")
        print(f"  case steps recorded  {steps_at - started:6.2f} s   {count / (steps_at - started):7.0f} events/s")
        for name in before.ticks:
            used = (after.ticks.get(name, 0) - before.ticks[name]) / tick
            print(f"  CPU {name:24s} {used:6.2f} s   {1000 * used / count:6.2f} ms a report")
    finally:
        await cleanup(settings, topics, "intake")


async def _at_least(pool, query: str, count: int) -> bool:  # type: ignore[no-untyped-def]
    return (await pool.fetchval(query)) >= count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=5000, help="the backlog (default 5,000)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for it at most (default 600)")
    args = parser.parse_args()
    asyncio.run(run(args.reports, args.timeout))


if __name__ == "__main__":
    main()

"""What the benchmarks share: percentiles, a goal's verdict line, a free loopback port, and dropping a run's own
schema and topics."""
from __future__ import annotations

import signal
import socket
import subprocess

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from shared.settings import Settings
from shared.topics import Topics


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of seconds, in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))] * 1000


def verdict(label: str, figure: str, passed: bool) -> None:
    """One goal: its figure and PASS or FAIL, in a column with the others."""
    print(f"  {label:<52} {figure:<24} {'PASS' if passed else 'FAIL'}")


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def cleanup(settings: Settings, topics: Topics, service: str = "supervision") -> None:
    """Drop a run's schema of `service` and every topic under its prefix."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{settings.schema(service)}" CASCADE')
    finally:
        await conn.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(topics.prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


def stop_process(proc: subprocess.Popen | None, grace: float = 20) -> None:
    """SIGTERM a service the benchmark started, SIGKILL after `grace` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()

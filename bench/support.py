"""What the benchmarks share: percentiles, a goal's verdict line, a free loopback port, dropping a run's own
schema and topics, the CPU each process of the running system used, and what a run moved through Kafka and
PostgreSQL."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
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


def system_processes() -> list[tuple[str, int, list[str]]]:
    """(component, pid, stat fields after the name) of each process of the running system, from /proc (Linux)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if "kafka.Kafka" in cmdline:
            name = "kafka"
        elif cmdline.startswith("postgres"):
            name = "postgresql"
        elif m := re.search(r"-m (services\.[\w.]+|deploy\.local\.sms_sink|bench\.e2e)", cmdline):  # …supervision.live: live
            name = m[1].split(".")[-1]
        else:
            continue
        found.append((name, int(entry), fields))
    return found


def cpu_by_component() -> dict[str, float]:
    """CPU seconds used so far by each part of the running system."""
    ticks = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = {}
    for name, _, fields in system_processes():
        # utime and stime are fields 14 and 15 of /proc/PID/stat (11 and 12 after the name).
        used = int(fields[11]) + int(fields[12])
        if name == "postgresql":
            # cutime and cstime (16, 17): the backends that exited, counted in the postmaster (their parent);
            # without them a connection closed during the run takes its CPU with it.
            used += int(fields[13]) + int(fields[14])
        totals[name] = totals.get(name, 0.0) + used / ticks
    return totals


# Processes of the benchmark's own making, counted apart from wangge's: the load (bench.e2e sends the reports and
# reads every case event, task and reply) and the SMS gateway's stand-in (a third party in production).
HARNESS = {"e2e": "this benchmark (sends the reports, reads every event)", "sms_sink": "the SMS gateway's stand-in"}


async def kafka_traffic(bootstrap: str) -> tuple[int, int]:
    """(records written to every topic so far, records read and committed so far by every consumer group but the
    benchmarks' own `bench-*`): the difference of two readings is what a run moved through the broker."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        described = await admin.describe_topics(sorted(await consumer.topics()))
        partitions = [TopicPartition(topic["topic"], p["partition"]) for topic in described
                      for p in topic["partitions"]]
        written = sum((await consumer.end_offsets(partitions)).values())
        read = 0
        for group, *_ in await admin.list_consumer_groups():
            if not group.startswith("bench-"):
                offsets = await admin.list_consumer_group_offsets(group)
                read += sum(max(0, committed.offset) for committed in offsets.values())
    finally:
        await admin.close()
        await consumer.stop()
    return written, read


async def postgres_writes(dsn: str) -> tuple[int, int]:
    """(rows inserted, updated and deleted, transactions committed) so far in the database (PostgreSQL's statistics,
    which a busy backend reports within a second and an idle one within ten)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetchval("SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables")
        commits = await conn.fetchval("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        return int(rows), int(commits)
    finally:
        await conn.close()

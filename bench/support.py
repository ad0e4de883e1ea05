"""What the benchmarks share: percentiles, a goal's verdict line, a free loopback port, dropping a run's own
schema and topics, the CPU each process of the running system used, and what a run moved through Kafka and
PostgreSQL."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.lag import end_offsets
from shared.settings import Settings, get_settings
from shared.topics import Topics
from services.supervision.live import APP_NAME as LIVE_APP

REPO = Path(__file__).resolve().parents[1]


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


# ---- CPU of the running system, from /proc (Linux) ---------------------------------------------------------------
# Why it is done this way (issue 17: PostgreSQL read 0.02 ms a case while it did most of the work):
# - Only this stack's processes: other stacks run on the same machine (parallel checkouts, the tests'), so a process
#   is found by what names it uniquely — ./dev's pid files for the services and the broker, the postmaster whose
#   postmaster.pid names the DSN's port — never by a command line that every stack's processes share.
# - A component is its root process and every descendant, plus the CPU of the descendants that exited and were
#   reaped (cutime/cstime). PostgreSQL's backends are the postmaster's children, and they exit during a run: asyncpg
#   replaces a connection after 50,000 queries or 300 s idle (shared/db.py). A reading of live processes loses an exited
#   backend's whole life, so the difference of two readings went near zero or below. The postmaster's command line
#   is `/usr/lib/postgresql/NN/bin/postgres -D …`, so the old match `startswith("postgres")` never found it and its
#   cutime (the fix of c1bbad0) was never read.
# - One consistent snapshot: a child reaped while the process list is read is counted twice or not at all, so the
#   roots' reaped CPU is read before and after the pass, and the pass is made again if it moved.
# - Pids get reused and services get restarted: a component is named by (pid, start time), and two readings of
#   different processes are not subtracted (cpu_used reports it instead).


@dataclass(frozen=True)
class Proc:
    """One process as /proc/PID/stat shows it, CPU in clock ticks."""

    pid: int
    ppid: int
    start: int  # starttime (field 22): with the pid, it names this process and no later one given the same pid
    own: int  # utime + stime (fields 14, 15), every thread of the process
    reaped: int  # cutime + cstime (16, 17): its children that exited and were waited for


def parse_stat(pid: int, text: str) -> Proc:
    """A /proc/PID/stat line; the name (field 2) may hold spaces and parentheses, so split after its last ')'."""
    fields = text.rsplit(")", 1)[1].split()  # fields[0] is field 3 (state)
    return Proc(pid, int(fields[1]), int(fields[19]), int(fields[11]) + int(fields[12]),
                int(fields[13]) + int(fields[14]))


def read_stat(pid: int) -> Proc | None:
    """The process now, or None if it is gone (or /proc hides it)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return parse_stat(pid, fh.read())
    except (OSError, IndexError, ValueError):
        return None


def process_table() -> dict[int, Proc]:
    """Every process now, by pid."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (proc := read_stat(int(entry))) is not None:
            table[proc.pid] = proc
    return table


def subtree_ticks(table: dict[int, Proc], root: int, others: frozenset[int] = frozenset()) -> int:
    """CPU of `root` and all its descendants, with the descendants each of them reaped — but not the subtrees of
    `others`, roots counted on their own (Patroni is its PostgreSQL's parent: each is counted once)."""
    children: dict[int, list[int]] = {}
    for proc in table.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    total, stack, seen = 0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen or pid not in table or (pid != root and pid in others):
            continue
        seen.add(pid)
        total += table[pid].own + table[pid].reaped
        stack.extend(children.get(pid, ()))
    return total


def argv_of(pid: int) -> list[str]:
    """A process's command line, word by word ([] if gone or hidden)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [w.decode(errors="replace") for w in fh.read().split(b"\0") if w]
    except OSError:
        return []


def state_dir() -> Path:
    """The stack's state folder, as ./dev sets it (WANGGE_STATE_DIR, default <repo>/.local)."""
    return Path(os.environ.get("WANGGE_STATE_DIR") or REPO / ".local")


# component → (./dev's pid file name, the module the process runs): what `./dev up` starts (dev's PROCS).
DEV_PROCESSES = {"intake": ("intake", "services.intake"), "routing": ("routing", "services.routing"),
                 "supervision": ("supervision", "services.supervision"), "notify": ("notify", "services.notify"),
                 "live": ("live", "services.supervision.live"), "sms_sink": ("sms-sink", "deploy.local.sms_sink"),
                 "mail_sink": ("mail-sink", "deploy.local.mail_sink")}
# The processes ./dev runs as several instances (WANGGE_INSTANCES=N): instance i ≥ 2 has the pid file <name>-<i>.
INSTANCED = ("intake", "routing", "supervision", "notify", "live")
MAX_INSTANCES = 9  # ./dev's bound on WANGGE_INSTANCES
MAX_KAFKA_NODES = 9


def root_key(component: str, i: int) -> str:
    """The key of a component's i-th process: its plain name for the first (what every reader of a single stack
    knows), `name#i` for the others (a service's instance i, a cluster's node i, a failover cluster's member i)."""
    return component if i == 1 else f"{component}#{i}"


def component_of(key: str) -> str:
    """The component a root key counts for: intake#3 → intake, kafka#2 → kafka."""
    return key.split("#", 1)[0]


def by_component(values: dict[str, float]) -> dict[str, float]:
    """Figures per root key (each instance, node, member) summed per component."""
    out: dict[str, float] = {}
    for key, value in values.items():
        out[component_of(key)] = out.get(component_of(key), 0.0) + value
    return out


def instances_of(values: dict[str, object]) -> dict[str, int]:
    """How many processes (instances, nodes, members) each component has among these keys."""
    out: dict[str, int] = {}
    for key in values:
        out[component_of(key)] = out.get(component_of(key), 0) + 1
    return out


def _pid_file(path: Path) -> int | None:
    try:
        text = path.read_text().split()
    except OSError:
        return None
    return int(text[0]) if text and text[0].isdigit() else None


def dsn_ports(dsn: str) -> list[int]:
    """Every port a PostgreSQL URL names: one, or each host of a multi-host URL (the failover cluster's
    postgresql://u@127.0.0.1:P1,127.0.0.1:P2/db?target_session_attrs=read-write), in order."""
    netloc = urlsplit(dsn.split("?", 1)[0]).netloc.rsplit("@", 1)[-1]
    ports = []
    for host in netloc.split(","):
        port = host.rsplit(":", 1)[-1] if ":" in host else ""
        ports.append(int(port) if port.isdigit() else 5432)  # "[::1]" ends in "1]": no port, the default
    return ports


def postmaster_pid(dsn: str, port: int | None = None) -> int | None:
    """The postmaster serving `dsn` (or its host on `port`): a `postgres -D DATA` process whose DATA/postmaster.pid
    names it and that port (other clusters run on this machine too)."""
    port = port or dsn_ports(dsn)[0]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        argv = argv_of(int(entry))
        if not argv or Path(argv[0]).name != "postgres" or "-D" not in argv[:-1]:
            continue
        data = Path(argv[argv.index("-D") + 1])
        try:
            lines = (data if data.is_absolute() else Path(f"/proc/{entry}/cwd") / data).joinpath(
                "postmaster.pid").read_text().splitlines()
        except OSError:
            continue
        if len(lines) > 3 and lines[0].strip() == entry and lines[3].strip() == str(port):
            return int(entry)
    return None


def _dev_process(run: Path, name: str, module: str) -> int | None:
    """The pid in ./dev's pid file `name`, if that process runs `python -m module` (pids get reused)."""
    pid = _pid_file(run / f"{name}.pid")
    argv = argv_of(pid) if pid else []
    return pid if "-m" in argv[:-1] and argv[argv.index("-m") + 1] == module else None


def pg_ha_roots(dsn: str) -> dict[str, int]:
    """A failover cluster's processes (WANGGE_PG_HA=1, deploy/local/patroni.sh): each member's postmaster
    (postgresql, postgresql#2: the standby replays every write, so it costs too), each member's Patroni and etcd —
    found by the pid files under patroni.sh's folder and the URL's ports, never by a name other stacks share."""
    roots: dict[str, int] = {}
    for i, port in enumerate(dsn_ports(dsn), 1):
        if (pid := postmaster_pid(dsn, port)) is not None:
            roots[root_key("postgresql", i)] = pid
    base = pg_ha_dir()
    if base is not None:
        for i in range(1, len(dsn_ports(dsn)) + 1):
            pid = _pid_file(base / "run" / f"patroni-member{i}.pid")
            if pid and any(w.endswith(f"patroni-member{i}.yml") for w in argv_of(pid)):
                roots[root_key("patroni", i)] = pid
        pid = _pid_file(base / "run" / "etcd.pid")
        if pid and argv_of(pid) and Path(argv_of(pid)[0]).name == "etcd":
            roots["etcd"] = pid
    return roots


def pg_ha_dir() -> Path | None:
    """The failover cluster's folder (data/, run/, log/): patroni.sh's `where` (it may live outside the state folder
    when PostgreSQL's user cannot reach it), None without one."""
    try:
        done = subprocess.run([str(REPO / "deploy" / "local" / "patroni.sh"), "where"], capture_output=True, text=True,
                              timeout=30, env={**os.environ, "WANGGE_STATE_DIR": str(state_dir())})
    except (OSError, subprocess.TimeoutExpired):
        return None
    path = Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None
    return path if path is not None and (path / "run").is_dir() else None


def stack_roots(settings: Settings, extra: dict[str, int] | None = None) -> dict[str, int]:
    """Root key (see root_key) → root pid of each process of this stack that runs now (and `extra`, e.g. the
    benchmark itself): every instance of each service and of the live figures (WANGGE_INSTANCES=N), every node of a
    Kafka cluster (WANGGE_KAFKA_NODES=3), every member of a failover PostgreSQL (WANGGE_PG_HA=1) with its Patroni and
    etcd."""
    run = state_dir() / "run"
    roots: dict[str, int] = {}
    for component, (name, module) in DEV_PROCESSES.items():
        for i in range(1, (MAX_INSTANCES if component in INSTANCED else 1) + 1):
            if (pid := _dev_process(run, name if i == 1 else f"{name}-{i}", module)) is not None:
                roots[root_key(component, i)] = pid
    pid = _pid_file(run / "kafka.pid")
    if pid and "kafka.Kafka" in argv_of(pid):
        roots["kafka"] = pid
    else:  # a cluster: node i's pid file kafka-node<i>.pid (deploy/local/kafka.sh)
        for i in range(1, MAX_KAFKA_NODES + 1):
            pid = _pid_file(run / f"kafka-node{i}.pid")
            if pid and "kafka.Kafka" in argv_of(pid):
                roots[root_key("kafka", i)] = pid
    if len(dsn_ports(settings.database_url)) > 1:
        roots.update(pg_ha_roots(settings.database_url))
    elif (pid := postmaster_pid(settings.database_url)) is not None:
        roots["postgresql"] = pid
    roots.update(extra or {})
    return roots


@dataclass(frozen=True)
class CpuReading:
    """CPU ticks used so far by each component, and which process (pid, start time) each was read from."""

    ticks: dict[str, int]
    roots: dict[str, tuple[int, int]]


def read_cpu(roots: dict[str, int]) -> CpuReading:
    """One consistent reading of each component's CPU (see above)."""
    for _ in range(10):
        first = {name: read_stat(pid) for name, pid in roots.items()}
        table = process_table()
        again = {name: read_stat(pid) for name, pid in roots.items()}
        # A root that reaped a child during the pass may have it counted twice or not at all: read again.
        if all((a.reaped if a else None) == (b.reaped if b else None) for a, b in zip(first.values(), again.values())):
            break
    pids = frozenset(roots.values())
    ticks = {name: subtree_ticks(table, pid, pids) for name, pid in roots.items() if pid in table}
    return CpuReading(ticks, {name: (pid, table[pid].start) for name, pid in roots.items() if pid in table})


def cpu_used(before: CpuReading, after: CpuReading) -> tuple[dict[str, float], dict[str, str]]:
    """(CPU seconds each component used between two readings, why a component's figure is missing): a component
    restarted, started or stopped between them has no honest difference."""
    tick = os.sysconf("SC_CLK_TCK")
    used, missing = {}, {}
    for name in sorted(set(before.roots) | set(after.roots)):
        if name not in before.roots:
            missing[name] = "started during the run"
        elif name not in after.roots:
            missing[name] = "gone by the end of the run"
        elif before.roots[name] != after.roots[name]:
            missing[name] = f"restarted during the run (pid {before.roots[name][0]} → {after.roots[name][0]})"
        else:
            used[name] = (after.ticks[name] - before.ticks[name]) / tick
    return used, missing


def cpu_by_component(settings: Settings | None = None) -> dict[str, float]:
    """CPU seconds used so far by each component of the running stack (one reading, for a quick look)."""
    reading = read_cpu(stack_roots(settings or get_settings()))
    return {name: ticks / os.sysconf("SC_CLK_TCK") for name, ticks in reading.ticks.items()}


# Processes of the benchmark's own making, counted apart from wangge's: the load (bench.e2e sends the reports and
# reads every case event, task and reply) and the SMS gateway's stand-in (a third party in production).
HARNESS = {"e2e": "this benchmark (sends the reports, reads every event)", "sms_sink": "the SMS gateway's stand-in",
           "mail_sink": "the mail server's stand-in"}


class Traffic(NamedTuple):
    """Records through the broker so far: the difference of two readings is what a run moved."""

    written: int  # to every topic
    read: int  # read and committed by every consumer group but the benchmarks' own `bench-*`
    streamed: int  # of those, by the live figures' faust agent (its group)
    table_rows: int  # of the written, to the live figures' table changelogs


async def kafka_traffic(bootstrap: str) -> Traffic:
    """Records written and read so far through the broker (Traffic)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        described = await admin.describe_topics(sorted(await consumer.topics()))
        partitions = [TopicPartition(topic["topic"], p["partition"]) for topic in described
                      for p in topic["partitions"]]
        ends = await end_offsets(consumer, partitions)
        written = sum(ends.values())
        table_rows = sum(end for tp, end in ends.items()
                         if f"{LIVE_APP}-" in tp.topic and tp.topic.endswith("-changelog"))
        read = streamed = 0
        for group, *_ in await admin.list_consumer_groups():
            if not group.startswith("bench-"):
                offsets = await admin.list_consumer_group_offsets(group)
                committed = sum(max(0, offset.offset) for offset in offsets.values())
                read += committed
                if group.endswith(LIVE_APP):
                    streamed += committed
    finally:
        await admin.close()
        await consumer.stop()
    return Traffic(written, read, streamed, table_rows)


async def groups_behind(bootstrap: str, prefix: str) -> dict[str, int]:
    """Records each consumer group of this stack (`{prefix}wangge-*`: the services' and the live figures') has yet to
    read and commit on the partitions it committed on."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        ours = sorted(group for group, *_ in await admin.list_consumer_groups() if group.startswith(f"{prefix}wangge-"))
        behind: dict[str, int] = {}
        committed_by_group = {group: {tp: c.offset for tp, c in (await admin.list_consumer_group_offsets(group)).items()
                                      if c.offset >= 0} for group in ours}
        every = sorted({tp for committed in committed_by_group.values() for tp in committed})
        ends = await end_offsets(consumer, every) if every else {}
        for group, committed in committed_by_group.items():
            behind[group] = sum(max(0, ends[tp] - offset) for tp, offset in committed.items())
        return behind
    finally:
        await admin.close()
        await consumer.stop()


async def wait_caught_up(bootstrap: str, prefix: str, timeout: float = 120.0) -> tuple[float, dict[str, int]]:
    """Wait until every working consumer group of the stack has read and committed all it has to (a process still
    recovering or behind does the run's work after it: its CPU and records would be counted in the next run); the
    seconds waited and what was still behind at the timeout (empty: caught up)."""
    started = time.monotonic()
    while True:
        behind = {group: n for group, n in (await groups_behind(bootstrap, prefix)).items() if n}
        if not behind or time.monotonic() - started > timeout:
            return time.monotonic() - started, behind
        await asyncio.sleep(0.5)


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

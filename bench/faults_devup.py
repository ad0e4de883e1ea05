"""The faults a street meets, on the system `./dev up` runs — as an operator would try it, with no hand between —
and, per fault, the count of every report end to end.

    ./dev up
    .venv/bin/python -m bench.faults_devup --reports 1000 --rate 50 --faults kafka,services,postgres,kafka+postgres

It works on whatever `./dev up` runs with the environment it is given: the single broker or the three-broker cluster
(WANGGE_KAFKA_NODES=3), one or several instances of each service (WANGGE_INSTANCES=N), the single PostgreSQL or the
failover cluster (WANGGE_PG_HA=1). Each fault of --faults gets a stream of its own: at least --reports reports
published on wangge.reports at --rate, and on until the fault is over, the fault falling a third into it:

    kafka       one broker SIGKILLed: the single node, or on a cluster node --broker (default the last), the others
                carrying on
    intake, routing, supervision, notify, live
                one instance of that service SIGKILLed (--instance, default the last one running)
    services    one instance of each of the five, one after another in the same stream
    postgres    the PostgreSQL primary: the single server's postmaster; on the failover cluster the leader member's
                machine dies (its Patroni, its postmaster and every backend SIGKILLed at once) and Patroni promotes
                the synchronous standby (waited for before ./dev up brings the dead member back as the standby)
    a+b         the parts of a and b killed --gap seconds apart in the same stream (kafka+postgres: both down at once)

After a fault's kills one `./dev up` brings back what is down (a killed member rejoins as the standby). Then
nothing is touched until, within --settle seconds, every report is counted: one case (intake's table), one task
(task.assigned on an owner's topic: a second event id for the same case is a double; a record sent again with its
id is not), one acknowledgement SMS (at the SMS sink, "受理" with the case number) — and every consumer group is at lag
0 and every instance ready. Printed per fault: reports sent, cases, tasks, acks, doubles (reports with any of the
three twice), lost (reports missing any). Exit code 0 when every fault lost and doubled nothing, 1 otherwise.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from bench.support import INSTANCED, MAX_INSTANCES, MAX_KAFKA_NODES, argv_of, state_dir
from shared.contracts import Envelope
from shared.lag import end_offsets, group_lags
from shared.settings import Settings
from shared.topics import Topics

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PORTS = {"intake": 8101, "routing": 8102, "supervision": 8103, "notify": 8104, "live": 8105}
MODULES = {"intake": "services.intake", "routing": "services.routing", "supervision": "services.supervision",
           "notify": "services.notify", "live": "services.supervision.live"}
PARTS = ("kafka", "postgres", *INSTANCED)
POINT = {"lon": 117.575168, "lat": 34.871845}
CATEGORIES = ("CM04", "MD01", "CM02")
CASE_NO = re.compile(r"\d{8}-\d{4,}")


# The clients' own complaints while the broker is down are the drill's expected weather, not its output.
logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# ---- what a fault is ---------------------------------------------------------------------------------------------

def parse_faults(text: str) -> list[list[str]]:
    """--faults: a comma list of faults, each one part or parts joined by '+' (killed in the same stream);
    `services` stands for the five services' instances, one after another."""
    faults = []
    for fault in (f.strip() for f in text.split(",")):
        parts = [p.strip() for p in fault.split("+") if p.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"an empty fault in {text!r}")
        expanded: list[str] = []
        for part in parts:
            if part == "services":
                expanded.extend(INSTANCED)
            elif part in PARTS:
                expanded.append(part)
            else:
                raise argparse.ArgumentTypeError(f"no part {part!r}: one of services, {', '.join(PARTS)}")
        faults.append(expanded)
    return faults


def label(parts: list[str]) -> str:
    """How a fault is named in the table."""
    if parts == list(INSTANCED):
        return "an instance of each service"
    return " + ".join({"kafka": "a broker", "postgres": "the PostgreSQL primary"}.get(p, f"an instance of {p}")
                      for p in parts)


# ---- counting ----------------------------------------------------------------------------------------------------

@dataclass
class Counts:
    """One fault's stream, counted end to end."""

    sent: int
    cases: int  # reports that have a case
    tasks: int  # reports whose case has a task on its owner's topic
    acks: int  # reports whose case has an acknowledgement SMS
    doubles: int  # reports with a case, a task or an acknowledgement twice (or more)
    lost: int  # reports missing a case, a task or an acknowledgement
    doubled: dict[str, int] = field(default_factory=dict)  # per kind: cases, tasks, acks counted twice

    @property
    def complete(self) -> bool:
        return self.sent > 0 and self.lost == 0

    @property
    def passed(self) -> bool:
        return self.complete and self.doubles == 0


def count(sent: list[str], cases: list[tuple[str, str, str]], tasks: list[tuple[str, str]],
          acks: list[str]) -> Counts:
    """The counts of one stream from what was found: `sent` the reports' external ids; `cases` (external_id, case_id,
    case_no) rows of intake's reports; `tasks` (case_id, event id) of every task.assigned read; `acks` the texts of
    the acknowledgement SMS the sink received. Rows of other streams are ignored."""
    mine = set(sent)
    case_rows: dict[str, list[tuple[str, str]]] = {}
    for external_id, case_id, case_no in cases:
        if external_id in mine:
            case_rows.setdefault(external_id, []).append((case_id, case_no))
    task_ids: dict[str, set[str]] = {}
    for case_id, event_id in tasks:
        task_ids.setdefault(case_id, set()).add(event_id)
    ack_count: dict[str, int] = {}
    for text in acks:
        for case_no in set(CASE_NO.findall(text)):
            ack_count[case_no] = ack_count.get(case_no, 0) + 1
    with_case = with_task = with_ack = doubles = lost = 0
    doubled = {"cases": 0, "tasks": 0, "acks": 0}
    for external_id in mine:
        rows = case_rows.get(external_id, [])
        n_tasks = sum(len(task_ids.get(case_id, ())) for case_id, _ in rows)
        n_acks = sum(ack_count.get(case_no, 0) for _, case_no in rows)
        with_case += bool(rows)
        with_task += n_tasks > 0
        with_ack += n_acks > 0
        twice = {"cases": len(rows) > 1, "tasks": n_tasks > 1, "acks": n_acks > 1}
        for kind, yes in twice.items():
            doubled[kind] += yes
        doubles += any(twice.values())
        lost += not (rows and n_tasks and n_acks)
    return Counts(len(mine), with_case, with_task, with_ack, doubles, lost, doubled)


def table(rows: list[tuple[str, Counts | None, str]]) -> str:
    """Per fault: the counts and the verdict (a fault that could not be run or counted shows why)."""
    head = f"  {'fault':<36} {'sent':>6} {'cases':>6} {'tasks':>6} {'acks':>6} {'doubles':>8} {'lost':>6}  verdict"
    lines = [head]
    for name, c, note in rows:
        if c is None:
            lines.append(f"  {name:<36} {'–':>6} {'–':>6} {'–':>6} {'–':>6} {'–':>8} {'–':>6}  FAIL ({note})")
            continue
        verdict = "PASS" if c.passed and not note else "FAIL"
        twice = ", ".join(f"{k} {v}" for k, v in c.doubled.items() if v)
        why = "; ".join(filter(None, [note, f"twice: {twice}" if twice else ""]))
        lines.append(f"  {name:<36} {c.sent:>6,} {c.cases:>6,} {c.tasks:>6,} {c.acks:>6,} {c.doubles:>8,} "
                     f"{c.lost:>6,}  {verdict}{f' ({why})' if why else ''}")
    return "\n".join(lines)


# ---- the stack's processes (./dev's pid files) ---------------------------------------------------------------------

def run_dir() -> Path:
    return state_dir() / "run"


def _pid(path: Path, marker: str) -> int | None:
    """The pid in a pid file, if that process runs and one word of its command line is (or, for a path, ends with)
    `marker` (pids get reused)."""
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if any(word == marker or word.endswith("/" + marker) for word in argv_of(pid)) else None


def instances(service: str) -> dict[int, int]:
    """Instance number → pid of each running instance of `service` (./dev's <name>.pid, <name>-<i>.pid)."""
    found = {}
    for i in range(1, MAX_INSTANCES + 1):
        pid = _pid(run_dir() / (f"{service}.pid" if i == 1 else f"{service}-{i}.pid"), MODULES[service])
        if pid is not None:
            found[i] = pid
    return found


def brokers() -> dict[int, int]:
    """Node number → pid of each running broker: the single node as 0, or a cluster's nodes 1…N."""
    single = _pid(run_dir() / "kafka.pid", "kafka.Kafka")
    if single is not None:
        return {0: single}
    return {i: pid for i in range(1, MAX_KAFKA_NODES + 1)
            if (pid := _pid(run_dir() / f"kafka-node{i}.pid", "kafka.Kafka")) is not None}


def _script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / "deploy" / "local" / name), *args], capture_output=True, text=True, timeout=120)


def postgres_primary() -> tuple[str, list[int]]:
    """(what it is, the pids to SIGKILL) of the PostgreSQL primary: the single server's postmaster, or on the failover
    cluster (WANGGE_PG_HA=1) the leader member's Patroni and postmaster and every process under the postmaster."""
    if not ha():
        out = _script("postgres.sh", "status").stdout
        match = re.search(r"pid (\d+)", out)
        if not match:
            raise RuntimeError(f"no running PostgreSQL in deploy/local/postgres.sh status: {out!r}")
        return "the PostgreSQL server", [int(match[1])]
    leader = _script("postgres.sh", "leader").stdout.strip()
    base = Path(_script("postgres.sh", "where").stdout.strip())
    if not leader.isdigit():
        raise RuntimeError("no member of the failover cluster leads now (deploy/local/postgres.sh leader)")
    patroni = _pid(base / "run" / f"patroni-member{leader}.pid", f"patroni-member{leader}.yml")
    postmaster = int((base / "data" / f"member{leader}" / "postmaster.pid").read_text().split()[0])
    children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(int(p.name)) == postmaster]
    return f"PostgreSQL member{leader}, the leader (its Patroni, postmaster and backends)", \
        [*([patroni] if patroni else []), postmaster, *children]


def ha() -> bool:
    """Is PostgreSQL the failover cluster (WANGGE_PG_HA=1)?"""
    return os.environ.get("WANGGE_PG_HA", "0") == "1"


async def until_promoted(killed: str, timeout: float) -> None:
    """Until a member other than `killed` leads (Patroni promoted the synchronous standby), `timeout` s at most."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        leader = (await asyncio.to_thread(_script, "postgres.sh", "leader")).stdout.strip()
        if leader.isdigit() and leader != killed:
            say(f"member{leader} promoted to primary {time.monotonic() - started:.0f} s after member{killed} died")
            return
        await asyncio.sleep(1)
    say(f"no other member promoted within {timeout:g} s of member{killed}'s death")


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def sigkill(pids: list[int]) -> None:
    """SIGKILL each, then wait until it is gone (or a zombie: it holds no socket), so a restart finds its port free."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 30
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                if "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text():
                    break
            except OSError:
                break
            time.sleep(0.05)


def kill(part: str, args: argparse.Namespace) -> str:
    """SIGKILL one part of the running system by what ./dev (and its scripts) recorded; says what it killed."""
    if part == "postgres":
        what, pids = postgres_primary()
    elif part == "kafka":
        running = brokers()
        if not running:
            raise RuntimeError(f"no running broker in {run_dir()} (kafka.pid, kafka-node<i>.pid)")
        node = args.broker if args.broker in running else max(running)
        what, pids = ("the broker" if node == 0 else f"Kafka node {node} of {len(running)}"), [running[node]]
    else:
        running = instances(part)
        if not running:
            raise RuntimeError(f"no running {part} in {run_dir()}")
        i = args.instance if args.instance in running else max(running)
        what, pids = f"{part} instance {i} of {len(running)}", [running[i]]
    sigkill(pids)
    shown = ", ".join(map(str, pids[:3])) + (f" and {len(pids) - 3} more" if len(pids) > 3 else "")
    say(f"killed {what} (pid {shown})")
    return what


async def dev_up() -> None:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(str(REPO / "dev"), "up", stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        say(f"./dev up failed ({proc.returncode}): {err.decode()[-500:]}")
    else:
        say(f"./dev up brought everything back ({time.monotonic() - started:.0f} s)")


async def inflict(parts: list[str], args: argparse.Namespace, seconds: float) -> None:
    """A third into the stream the fault: the services' instances one after another over the next third, the others
    (the broker, PostgreSQL) --gap seconds apart, then one ./dev up brings back everything killed."""
    services = [p for p in parts if p in INSTANCED]
    others = [p for p in parts if p not in INSTANCED]
    await asyncio.sleep(seconds / 3)
    for n, part in enumerate(services):
        if n:
            await asyncio.sleep(seconds / 3 / max(1, len(services)))
        await asyncio.to_thread(kill, part, args)
    killed_leader = None
    for n, part in enumerate(others):
        if n or services:
            await asyncio.sleep(args.gap)
        if part == "postgres" and ha():
            killed_leader = _script("postgres.sh", "leader").stdout.strip()
        await asyncio.to_thread(kill, part, args)
    if killed_leader:
        # The standby promoted before anything is brought back: a ./dev up at once restarts the killed member's
        # Patroni while it still holds the leader lock (its TTL), and it resumes as the primary — a restart, not a
        # failover (seen here: "promoted self to leader because I had the session lock" 9 s after the kill).
        await until_promoted(killed_leader, args.promotion_timeout)
    # One ./dev up for the fault: with several instances the survivors take the killed ones' partitions meanwhile
    # (each ./dev up here takes minutes on a loaded machine: it checks every process and builds the screens).
    await dev_up()


# ---- the stream ----------------------------------------------------------------------------------------------------

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
                  faults_over: asyncio.Event) -> list[str]:
    """Publish at `rate` until `at_least` are out and the faults are over; the external ids published."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True,
                                request_timeout_ms=120000, retry_backoff_ms=500)
    await asyncio.wait_for(producer.start(), 30)
    ids: list[str] = []
    deliveries: list[asyncio.Task[None]] = []
    try:
        started = time.monotonic()
        while len(ids) < at_least or not faults_over.is_set():
            n = len(ids)
            external_id = f"{prefix}{n:06d}"
            body = {"source": "hotline", "external_id": external_id, "category": CATEGORIES[n % 3],
                    "description": f"故障演练 {n}", "location": POINT, "address": None,
                    "reporter": {"name": "居民", "phone": f"139{n % 10**8:08d}"}, "coordinator": None, "media": [],
                    "observed_at": "2026-11-28T09:00:00+08:00"}
            envelope = Envelope.new("report.submitted", 1, body, source="hotline-bridge")
            deliveries.append(asyncio.create_task(
                _deliver(producer, topics.reports, envelope.to_json(), external_id.encode())))
            ids.append(external_id)
            if n % max(1, int(rate * 15)) == 0:
                say(f"  {n:,} reports published")
            await asyncio.sleep(max(0.0, started + len(ids) / rate - time.monotonic()))
        await asyncio.wait_for(asyncio.gather(*deliveries), 600)
    finally:
        for delivery in deliveries:
            delivery.cancel()
        await producer.stop()
    return ids


async def task_offsets(settings: Settings, topics: Topics) -> dict[TopicPartition, int]:
    """The end of every owner's task topic now: a stream's tasks are read from here."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await asyncio.wait_for(consumer.start(), 30)
    try:
        parts = await task_partitions(settings, topics, consumer)
        return await end_offsets(consumer, parts) if parts else {}
    finally:
        await consumer.stop()


async def task_partitions(settings: Settings, topics: Topics, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
    """Every partition of the owners' task topics (the consumer's own metadata knows no partitions of a topic it
    has not subscribed to: asked of the cluster)."""
    names = sorted(t for t in await consumer.topics() if t.startswith(topics.tasks("")))
    if not names:
        return []
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]


async def read_tasks(settings: Settings, topics: Topics, since: dict[TopicPartition, int]) -> list[tuple[str, str]]:
    """(case_id, event id) of every task.assigned on the owners' topics after `since` (a topic new since: all)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await asyncio.wait_for(consumer.start(), 30)
    found = []
    try:
        parts = await task_partitions(settings, topics, consumer)
        if not parts:
            return found
        ends = await end_offsets(consumer, parts)
        for tp in parts:
            consumer.seek(tp, since.get(tp, 0))
        left = {tp for tp in parts if ends[tp] > since.get(tp, 0)}
        while left:
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000, max_records=5000), 30)
            for tp, records in batch.items():
                for record in records:
                    body = orjson.loads(record.value)
                    if body.get("type") == "task.assigned":
                        found.append((body["case_id"], body["id"]))
            left = {tp for tp in left if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return found


async def read_cases(settings: Settings, prefix: str) -> list[tuple[str, str, str]]:
    conn = await asyncpg.connect(settings.database_url, timeout=10)
    try:
        rows = await conn.fetch(f'SELECT external_id, case_id::text, case_no FROM "{settings.schema("intake")}".reports '
                                "WHERE external_id LIKE $1", prefix + "%")
    finally:
        await conn.close()
    return [(r["external_id"], r["case_id"], r["case_no"]) for r in rows]


async def read_acks(settings: Settings) -> list[str]:
    """The acknowledgement SMS the sink received (its GET /sms), by their text."""
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.get(settings.sms_gateway_url)
        answer.raise_for_status()
    return [m["text"] for m in answer.json()["messages"] if "受理" in m["text"]]


async def readiness() -> dict[str, str]:
    """/readyz of every running instance of every service and of the live figures."""
    ready: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=5) as http:
        for name, default in DEFAULT_PORTS.items():
            port = int(os.environ.get(f"WANGGE_{name.upper()}_PORT") or default)
            for i in sorted(instances(name)) or [1]:
                key = name if i == 1 else f"{name}-{i}"
                try:
                    answer = await http.get(f"http://127.0.0.1:{port + 1000 * (i - 1)}/readyz")
                    ready[key] = "ready" if answer.status_code == 200 else str(answer.json().get("checks"))
                except httpx.HTTPError as exc:
                    ready[key] = f"no answer ({exc!r})"
    return ready


async def settle(settings: Settings, topics: Topics, ids: list[str], prefix: str, since: dict[TopicPartition, int],
                 within: float) -> tuple[Counts | None, str]:
    """Count until every report is counted, every group is at lag 0 and every instance ready, `within` seconds at
    most; the last count and what was still wrong then ("" if nothing)."""
    done_at = time.monotonic()
    last: Counts | None = None
    wrong = "never counted"
    while True:
        try:
            cases, tasks, acks = await asyncio.wait_for(asyncio.gather(
                read_cases(settings, prefix), read_tasks(settings, topics, since), read_acks(settings)), 120)
            last = count(ids, cases, tasks, acks)
            lags = await group_lags(settings.kafka_bootstrap, lambda group: group.startswith(f"{topics.prefix}wangge-"),
                                    timeout=15)
            behind = {g: lag for g, lag in lags.items() if lag}
            ready = await readiness()
            unready = {k: v for k, v in ready.items() if v != "ready"}
            wrong = "; ".join(filter(None, [f"lost {last.lost}" if last.lost else "",
                                            f"behind: {behind}" if behind else "",
                                            f"not ready: {unready}" if unready else ""]))
            say(f"  {last.cases:,} cases, {last.tasks:,} tasks, {last.acks:,} acks of {last.sent:,}; "
                f"{last.doubles} doubled; {wrong or 'every group at lag 0, every instance ready'}")
            if not wrong:
                return last, ""
        except Exception as exc:  # noqa: BLE001 — the system may still be coming back: ask again
            wrong = f"not measured ({exc!r})"
            say(f"  {wrong}")
        if time.monotonic() - done_at > within:
            return last, f"not settled {within:g} s after the last report: {wrong}"
        await asyncio.sleep(10)


async def one_fault(settings: Settings, topics: Topics, parts: list[str],
                    args: argparse.Namespace) -> tuple[Counts | None, str]:
    prefix = f"drill-{uuid.uuid4().hex[:6]}-"
    say(f"fault: {label(parts)} — at least {args.reports:,} reports at {args.rate:g}/s ({prefix}…)")
    since = await task_offsets(settings, topics)
    over = asyncio.Event()
    failed: list[str] = []

    async def faults_then_over() -> None:
        try:
            await inflict(parts, args, args.reports / args.rate)
        except Exception as exc:  # noqa: BLE001 — a fault that could not be made is reported, the stream still ends
            failed.append(f"fault not made: {exc}")
            say(failed[-1])
        finally:
            over.set()

    ids, _ = await asyncio.gather(publish(settings, topics, prefix, args.reports, args.rate, over), faults_then_over())
    say(f"{len(ids):,} reports published; from now on nothing is touched")
    counts, wrong = await settle(settings, topics, ids, prefix, since, args.settle)
    return counts, "; ".join(filter(None, [*failed, wrong]))


async def run(args: argparse.Namespace) -> int:
    settings = Settings()
    topics = Topics(settings.topic_prefix)
    say(f"on {len(brokers())} broker(s), {max(len(instances(s)) for s in INSTANCED)} instance(s) of each service, "
        f"PostgreSQL {'failover cluster' if os.environ.get('WANGGE_PG_HA') == '1' else 'single server'}; faults: "
        + ", ".join(label(f) for f in args.faults))
    rows: list[tuple[str, Counts | None, str]] = []
    for parts in args.faults:
        counts, note = await one_fault(settings, topics, parts, args)
        rows.append((label(parts), counts, note))
        say(table(rows[-1:]).splitlines()[1].strip())
    print("\nper fault, every report counted end to end (a case, a task on its owner's topic, an acknowledgement SMS):")
    print(table(rows))
    passed = all(c is not None and c.passed and not note for _, c, note in rows)
    print(f"\n{'PASS' if passed else 'FAIL'}: {'nothing lost, nothing doubled' if passed else 'see the table above'}")
    return 0 if passed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults_devup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=1000,
                        help="reports published at least per fault, and more until it is over (default 1,000)")
    parser.add_argument("--rate", type=float, default=50, help="reports per second (default 50)")
    parser.add_argument("--faults", type=parse_faults, default=parse_faults("kafka,services,postgres"),
                        help="the faults, one stream each, in order: kafka, postgres, intake, routing, supervision, "
                             "notify, live, services (one instance of each); a+b kills both in the same stream "
                             "(default kafka,services,postgres)")
    parser.add_argument("--gap", type=float, default=2.0, help="seconds between the kills of a fault a+b (default 2)")
    parser.add_argument("--broker", type=int, default=None, metavar="N",
                        help="the cluster node killed by the fault kafka (default: the last node)")
    parser.add_argument("--instance", type=int, default=None, metavar="N",
                        help="the instance of a service killed (default: the last one running)")
    parser.add_argument("--promotion-timeout", type=float, default=120.0, metavar="S",
                        help="on the failover cluster: seconds to wait for the standby's promotion after the primary "
                             "is killed, before ./dev up brings the dead member back (default 120)")
    parser.add_argument("--settle", type=float, default=300.0,
                        help="seconds after a stream's last report for everything to be counted and caught up "
                             "(default 300)")
    args = parser.parse_args(argv)
    if args.reports < 1 or args.rate <= 0:
        parser.error("--reports at least 1, --rate above 0")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())

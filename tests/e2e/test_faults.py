"""The guarantee under faults: reports stream in while each service, then the broker, then PostgreSQL is
killed with SIGKILL and restarted; afterwards every report is exactly one case, one task and one
acknowledgement SMS — nothing lost, nothing doubled.

The services run as real processes (`python -m services.<name>`) on the test's own topic and schema
prefixes; the broker and PostgreSQL are the ones `./dev test` started, restarted with its scripts.
A reduced run (REPORTS reports at RATE/s); `bench/` has the long one.
"""
from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import orjson
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from deploy.local.sms_sink import create_sink_app
from shared.contracts import Envelope
from shared.settings import REPO_ROOT
from shared.topics import Topics, ensure_topics

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

# The suite's reduced run; bench/faults.py runs this same test with more reports at a higher rate.
REPORTS = int(os.environ.get("WANGGE_FAULT_REPORTS", "1000"))
RATE = float(os.environ.get("WANGGE_FAULT_RATE", "80"))
SERVICES = ("intake", "routing", "supervision", "notify")
POINT = {"lon": 117.575168, "lat": 34.871845}  # unit grid 3704020010010201, community 370402001001
CATEGORIES = ("CM04", "MD01", "CM02")  # 环卫所, the community, 城管


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Fleet:
    """The four services as child processes, each killable and restartable."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.env, self.logs = env, logs
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str) -> None:
        log = open(self.logs / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen([sys.executable, "-m", f"services.{name}"], cwd=REPO_ROOT, env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)


def _script(name: str, *args: str) -> str:
    done = subprocess.run([str(REPO_ROOT / "deploy" / "local" / name), *args], capture_output=True, text=True,
                          timeout=240, env=os.environ.copy())
    assert done.returncode in (0, 3), f"{name} {args}: {done.stdout}\n{done.stderr}"
    return done.stdout


def kill_kafka() -> None:
    state = Path(os.environ.get("WANGGE_STATE_DIR", REPO_ROOT / ".local"))
    pid = int((state / "run" / "kafka.pid").read_text().strip())
    os.kill(pid, signal.SIGKILL)


def kill_postgres() -> None:
    pid = int(re.search(r"pid (\d+)", _script("postgres.sh", "status")).group(1))
    os.kill(pid, signal.SIGKILL)


async def healthy(port: int) -> None:
    """Wait until a service answers /healthz (it has started its runtime)."""
    import httpx
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            try:
                if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)


async def test_killing_each_service_the_broker_and_postgres_loses_and_doubles_nothing(base_settings, tmp_path):
    tag = uuid.uuid4().hex[:6]
    prefix, schemas = f"f{tag}.", f"f{tag}_"
    topics = Topics(prefix)
    owners = ("huanwei", "chengguan", "370402001001")
    await asyncio.wait_for(ensure_topics(base_settings.kafka_bootstrap,
                                         topics.fixed() + [topics.for_owner(o) for o in owners]), 30)
    sink_app = create_sink_app()
    sink_port = free_port()
    sink = uvicorn.Server(uvicorn.Config(sink_app, host="127.0.0.1", port=sink_port, log_level="warning"))
    sink_task = asyncio.create_task(sink.serve())
    ports = {name: free_port() for name in SERVICES}
    env = {**os.environ, "WANGGE_TOPIC_PREFIX": prefix, "WANGGE_SCHEMA_PREFIX": schemas,
           "WANGGE_KAFKA_BOOTSTRAP": base_settings.kafka_bootstrap, "WANGGE_DATABASE_URL": base_settings.database_url,
           "WANGGE_SMS_GATEWAY_URL": f"http://127.0.0.1:{sink_port}/sms", "WANGGE_OUTBOX_POLL_SECONDS": "0.2",
           **{f"WANGGE_{name.upper()}_PORT": str(port) for name, port in ports.items()}}
    fleet = Fleet(env, tmp_path)
    try:
        for name in SERVICES:
            fleet.start(name)
        await asyncio.wait_for(asyncio.gather(*(healthy(ports[n]) for n in SERVICES)), 120)

        external_ids = [f"fault-{tag}-{n:05d}" for n in range(REPORTS)]
        producer = AIOKafkaProducer(bootstrap_servers=base_settings.kafka_bootstrap, enable_idempotence=True,
                                    request_timeout_ms=120000, retry_backoff_ms=500)
        await asyncio.wait_for(producer.start(), 30)

        async def stream() -> None:
            for n, external_id in enumerate(external_ids):
                body = {"source": "hotline", "external_id": external_id, "category": CATEGORIES[n % 3],
                        "description": f"故障测试 {n}", "location": POINT, "address": None,
                        "reporter": {"name": "居民", "phone": f"139{n:08d}"}, "coordinator": None, "media": [],
                        "observed_at": "2026-11-28T09:00:00+08:00"}
                envelope = Envelope.new("report.submitted", 1, body, source="hotline-bridge")
                # Sent, not awaited one by one: while the broker is down the producer holds and retries.
                await producer.send(topics.reports, envelope.to_json(), key=external_id.encode())
                await asyncio.sleep(1 / RATE)
            await producer.flush()

        async def faults() -> None:
            step = REPORTS / RATE / 7  # spread the faults over the stream
            for name in SERVICES:
                await asyncio.sleep(step)
                fleet.kill(name)
                await asyncio.sleep(1)
                fleet.start(name)
            await asyncio.sleep(step)
            kill_kafka()
            await asyncio.sleep(2)
            await asyncio.to_thread(_script, "kafka.sh", "start")
            await asyncio.sleep(step)
            kill_postgres()
            await asyncio.sleep(2)
            await asyncio.to_thread(_script, "postgres.sh", "start")

        await asyncio.wait_for(asyncio.gather(stream(), faults()), 400)
        await producer.stop()

        # Everything settles: every report a case with its task and its acknowledgement.
        assigned: dict[str, set[str]] = {}
        consumer = AIOKafkaConsumer(*(topics.tasks(o) for o in owners), bootstrap_servers=base_settings.kafka_bootstrap,
                                    group_id=f"fault-check-{tag}", auto_offset_reset="earliest", enable_auto_commit=False)
        await asyncio.wait_for(consumer.start(), 60)
        sms = sink_app.state.sink

        async def settle() -> None:
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        message = orjson.loads(record.value)
                        if message["type"] == "task.assigned":
                            assigned.setdefault(message["case_id"], set()).add(message["id"])
                acknowledged = sum(1 for m in sms.messages if "受理" in m["text"])
                if len(assigned) >= REPORTS and acknowledged >= REPORTS:
                    return
        try:
            await asyncio.wait_for(settle(), 240)
        finally:
            await consumer.stop()

        conn = await asyncpg.connect(base_settings.database_url)
        try:
            cases = await conn.fetch(f'SELECT case_id::text AS case_id, case_no, external_id FROM "{schemas}intake".reports')
            # Intake was killed holding part of a block of case numbers: every number it gave is still from a
            # block recorded before it was used (what it never used is a listed gap, not a mystery).
            unrecorded = await conn.fetchval(
                f"""SELECT count(*) FROM "{schemas}intake".reports r WHERE NOT EXISTS (
                      SELECT 1 FROM "{schemas}intake".case_number_blocks b
                      WHERE to_char(b.day, 'YYYYMMDD') = split_part(r.case_no, '-', 1)
                        AND split_part(r.case_no, '-', 2)::int BETWEEN b.first AND b.last)""")

            # Supervision folds the same events on its own consumer group, which may still be catching up after
            # its restart, the broker's and PostgreSQL's (its group rejoins, its backoff runs out): wait for it.
            async def supervised_count() -> int:
                while True:
                    count = await conn.fetchval(
                        f"""SELECT count(*) FROM "{schemas}supervision".cases WHERE state = 'dispatched'""")
                    if count >= REPORTS:
                        return count
                    await asyncio.sleep(0.5)

            try:
                supervised = await asyncio.wait_for(supervised_count(), 180)
            except TimeoutError:
                supervised = await conn.fetchval(
                    f"""SELECT count(*) FROM "{schemas}supervision".cases WHERE state = 'dispatched'""")
        finally:
            await conn.close()
        assert sorted(c["external_id"] for c in cases) == external_ids  # every report one case, none twice
        assert len({c["case_no"] for c in cases}) == REPORTS and unrecorded == 0
        assert set(assigned) == {c["case_id"] for c in cases}
        assert all(len(ids) == 1 for ids in assigned.values())  # one dispatch per case (redelivery keeps its id)
        acks = [m for m in sms.messages if "受理" in m["text"]]
        per_case = {c["case_no"]: sum(1 for m in acks if c["case_no"] in m["text"]) for c in cases}
        assert set(per_case.values()) == {1}, {k: v for k, v in per_case.items() if v != 1}
        assert supervised == REPORTS
    finally:
        fleet.stop_all()
        sink.should_exit = True
        await asyncio.wait_for(sink_task, 10)
        # The broker and the database are back for the rest of the suite whatever happened above.
        await asyncio.to_thread(_script, "kafka.sh", "start")
        await asyncio.to_thread(_script, "postgres.sh", "start")

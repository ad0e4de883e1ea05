"""Several instances of everything: two of each service and three live-figures processes share the stream's work
(consumer groups), one of each is killed with SIGKILL in the middle of the stream (its group rebalances onto the
survivors), and the results are those of one instance: every report one case, one dispatch and one
acknowledgement; no reply doubled; each case's history in supervision in its events' order on wangge.cases; and the
live figures asked through each surviving live instance (each holding only some partitions of the tables, the
others' share fetched and merged) equal the exact counts in the database.

Real processes (`python -m services.<name>`, `python -m services.supervision.live`) on the test's own topic and
schema prefixes, against the suite's broker and PostgreSQL, like the fault tests (test_faults.py). Heavy: one run.

Three causes of short live figures after the kill were found, each from the instances' logs of a failing run, and
fixed (before the third fix about 3 runs in 5 passed; with it, every run):
1. faust committed offsets ahead of the changelog rows their events wrote (its producer buffer's flush returned with
   up to 99 writes undelivered), so a SIGKILL lost rows for good: fixed by services/supervision/live/delivery.py
   (tests/integration/test_live_delivery.py fails without it).
2. A survivor keeping a partition through a late rebalance came out of its recovery with 11 of the partition's ~100
   cases (faust resumed the partition's changelog at an offset whose earlier rows the memory store had dropped):
   fixed by emptying the tables at each rebalance and recovering every held partition from its changelog's start
   (LiveStreams._recover_whole_on_rebalance).
3. A survivor given one of the killed member's partitions followed it from its END (its first event of partition 3 at
   offset 287, where the stream ended; the killed member had followed it to 23), so the events between were followed
   by no instance. faust's step after a recovery (Recovery.on_recovery_completed) resumes the source partitions
   while its flow is still on and seeks them to the committed offsets only afterwards, a call queued behind a fetch:
   meanwhile the fetcher hands the agent records from wherever aiokafka stands; the ones not yet followed are dropped
   when faust resumes its flow control, and faust's read offset, moved past them, makes it skip them when they are
   fetched again; and aiokafka's seek_to_committed leaves a partition with no committed offset where the fetcher
   left it — at the end, if it got that far. Seen in the survivors' logs, with aiokafka's position and faust's read
   offset, committed offset and gaps of each partition logged at each seek: events followed before the seek; a
   partition fetched to 131 while followed to 11. Fixed by services/supervision/live/resume.py: the flow is stopped
   before that step, and a partition without a committed offset is sought to its beginning
   (tests/integration/test_live_resume.py fails without either).
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from shared.credentials import issued, publish as publish_credentials
from shared.settings import REPO_ROOT
from tests.e2e.test_faults import SERVICES, FaultRun
from tests.support import free_ports, healthy

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REPORTS = int(os.environ.get("WANGGE_INSTANCES_REPORTS", "600"))
RATE = float(os.environ.get("WANGGE_INSTANCES_RATE", "40"))
INSTANCES = 2  # of each service
LIVE_INSTANCES = 3  # two survive the kill: each then holds some partitions and must merge the other's share
OPERATOR = "instances-operator-token"
MODULES = {**{name: f"services.{name}" for name in SERVICES}, "live": "services.supervision.live"}


class Instances:
    """N processes of each service, each on its own port, each killable."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.env, self.logs = env, logs
        self.counts = {**{name: INSTANCES for name in SERVICES}, "live": LIVE_INSTANCES}
        ports = iter(free_ports(sum(self.counts.values())))
        self.ports = {(name, i): next(ports) for name, n in self.counts.items() for i in range(n)}
        self.procs: dict[tuple[str, int], subprocess.Popen] = {}

    def start_all(self) -> None:
        for (name, i), port in self.ports.items():
            env = {**self.env, f"WANGGE_{name.upper()}_PORT": str(port)}
            log = open(self.logs / f"{name}-{i}.log", "ab")
            self.procs[(name, i)] = subprocess.Popen([sys.executable, "-m", MODULES[name]], cwd=REPO_ROOT, env=env,
                                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def kill(self, name: str, i: int) -> None:
        proc = self.procs[(name, i)]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def alive(self, name: str) -> list[int]:
        return [self.ports[(n, i)] for (n, i), proc in self.procs.items() if n == name and proc.poll() is None]

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)


class InstancesRun(FaultRun):
    """FaultRun's stream and count, with several instances of each service instead of one."""

    def __init__(self, settings, logs: Path, reports: int, rate: float):
        super().__init__(settings, logs, reports, rate)
        self.instances = Instances(self.fleet.env, logs)
        self.fleet.stop_all = self.instances.stop_all  # close() stops these
        self.run_settings = settings.model_copy(update={"topic_prefix": self.prefix, "schema_prefix": self.schemas})

    async def start(self) -> None:
        from shared.topics import ensure_topics
        import uvicorn

        await asyncio.wait_for(ensure_topics(self.settings.kafka_bootstrap, self.topics_made_beforehand()), 60)
        self._sink = uvicorn.Server(uvicorn.Config(self.sink_app, host="127.0.0.1", port=self.sink_port,
                                                   log_level="warning"))
        self._sink_task = asyncio.create_task(self._sink.serve())
        self.instances.start_all()
        await asyncio.wait_for(asyncio.gather(*(healthy(p, within=175) for p in self.instances.ports.values())), 180)
        await asyncio.wait_for(publish_credentials(self.run_settings, [issued(OPERATOR, name="多实例测试值班员",
                                                                               role="operator")]), 30)

    async def case_orders(self) -> dict[str, list[str]]:
        """Each case's event ids in the order wangge.cases holds them (its partition's offsets)."""
        orders: dict[str, list[str]] = {}
        consumer = AIOKafkaConsumer(self.topics.cases, bootstrap_servers=self.settings.kafka_bootstrap,
                                    group_id=None, auto_offset_reset="earliest", enable_auto_commit=False)
        await asyncio.wait_for(consumer.start(), 60)
        try:
            partitions = consumer.assignment()
            ends = await asyncio.wait_for(consumer.end_offsets(list(partitions)), 30)

            async def behind() -> bool:
                for tp, end in ends.items():
                    if await consumer.position(tp) < end:
                        return True
                return False

            async def read() -> None:
                while await behind():
                    for records in (await consumer.getmany(timeout_ms=500)).values():
                        for record in records:
                            event = orjson.loads(record.value)
                            if event.get("case_id"):
                                orders.setdefault(event["case_id"], []).append(event["id"])
            await asyncio.wait_for(read(), 120)
        finally:
            await asyncio.wait_for(consumer.stop(), 30)
        return orders


async def live_figures(port: int, *, want: dict, within: float = 180) -> dict:
    """GET /api/v1/live/figures on one live instance until its street counts are `want` (the last answer otherwise
    in the failure); 503s (a rebalance under way) are asked again."""
    last: object = None

    async def poll() -> dict:
        nonlocal last
        async with httpx.AsyncClient(timeout=15) as http:
            while True:
                try:
                    answer = await http.get(f"http://127.0.0.1:{port}/api/v1/live/figures",
                                            headers={"Authorization": f"Bearer {OPERATOR}"})
                except httpx.TransportError as exc:  # a kept-alive connection closed by the server meanwhile
                    last = repr(exc)
                    await asyncio.sleep(1)
                    continue
                last = (answer.status_code, answer.text[:300])
                if answer.status_code == 200:
                    figures = answer.json()
                    last = counts_of(figures)
                    if last == want:
                        return figures
                await asyncio.sleep(1)

    try:
        return await asyncio.wait_for(poll(), within)
    except asyncio.TimeoutError:
        raise AssertionError(f"live instance on {port}: {last} instead of {want}") from None


def counts_of(figures: dict) -> dict:
    return {"open_now": figures["open_now"], "overdue_now": figures["overdue_now"],
            "accepted_today": sum(figures["today"]["street"]),
            "per_grid": {row["unit_grid"]: row["open"] for row in figures["unit_grids"] if row["open"]}}


async def test_two_instances_of_each_service_and_three_live_ones_one_each_killed(base_settings, tmp_path):
    run = InstancesRun(base_settings, tmp_path, REPORTS, RATE)
    try:
        await run.start()
        # Every live instance answers for the whole street before the kill too (three members, a third each).
        for port in run.instances.alive("live"):
            await live_figures(port, want={"open_now": 0, "overdue_now": 0, "accepted_today": 0, "per_grid": {}},
                               within=120)

        async def faults(seconds: float) -> None:
            await asyncio.sleep(seconds / 3)
            for name in (*SERVICES, "live"):
                run.instances.kill(name, 1)  # SIGKILL: the member leaves no goodbye; its group rebalances

        await run.stream_with(faults)
        await run.assert_every_report_once()  # one case, one dispatch, one acknowledgement each

        conn = await asyncpg.connect(base_settings.database_url)
        try:
            # Supervision's history of every case, in the order it recorded the events.
            events = await conn.fetch(
                f"""SELECT e.case_id, e.type, e.event_id, e.seq FROM "{run.schemas}supervision".case_events e
                    ORDER BY e.seq""")
            rows = await conn.fetch(f"""SELECT unit_grid, state FROM "{run.schemas}supervision".cases""")
        finally:
            await conn.close()
        history: dict[str, list[str]] = {}
        for row in events:
            history.setdefault(row["case_id"], []).append(row["event_id"])
        orders = await run.case_orders()
        assert len(history) == REPORTS
        # Order per case kept: supervision recorded each case's events in the order wangge.cases holds them.
        # An event relayed twice (an instance killed between its send and its outbox mark) is on the topic twice;
        # consumers apply it once, at its first place: the order to keep is that of first occurrences.
        wrong = {case_id: ids for case_id, ids in history.items()
                 if ids != [i for i in dict.fromkeys(orders.get(case_id, [])) if i in set(ids)]}
        assert not wrong, f"{len(wrong)} cases recorded out of their events' order, e.g. {next(iter(wrong.items()))}"
        # And nothing applied twice (the event id is unique in the table, so a double would show as a missing one).
        assert all(len(ids) == len(set(ids)) for ids in history.values())

        acks = [m for m in run.sink_app.state.sink.messages if "受理" in m["text"]]
        assert len(acks) == REPORTS  # no acknowledgement doubled across the instances
        texts = Counter(m["text"] for m in run.sink_app.state.sink.messages)
        assert not [t for t, n in texts.items() if n > 1], "an SMS sent twice"

        # The live figures, asked through each surviving live instance, equal the database's exact counts.
        open_rows = [r for r in rows if r["state"] not in ("closed", "rejected", "merged")]
        want = {"open_now": len(open_rows), "overdue_now": 0, "accepted_today": REPORTS,
                "per_grid": dict(Counter(r["unit_grid"] for r in open_rows))}
        survivors = run.instances.alive("live")
        assert len(survivors) == LIVE_INSTANCES - 1
        answers = [await live_figures(port, want=want) for port in survivors]
        assert len({orjson.dumps({k: v for k, v in a.items() if k != "generated_at"}) for a in answers}) == 1
        # None of the survivors died on the way.
        assert all(len(run.instances.alive(name)) == run.instances.counts[name] - 1 for name in run.instances.counts)
    finally:
        await run.close()

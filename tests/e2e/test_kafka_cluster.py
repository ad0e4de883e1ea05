"""wangge on a three-broker Kafka cluster (deploy/local/kafka.sh with WANGGE_KAFKA_NODES=3, started here with a
state folder and ports of its own): every topic wangge creates has three copies and min.insync.replicas 2, read
from the cluster; a broker SIGKILLed in the middle of a stream of reports, and later restarted, loses and
doubles nothing; and a rolling restart of all three (each stopped and started in turn, the next only once every
partition has its three copies in sync again) neither.

The services run as real processes on the cluster (tests/e2e/test_faults.py's FaultRun, which counts every report
end to end: one case, one task, one acknowledgement SMS each, and every consumer group back to lag 0).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.supervision.live.bootstrap import build as build_live
from shared.settings import REPO_ROOT, Settings
from shared.topics import Topics, TopicSpec, ensure_topics
from tests.conftest import drop_schemas
from tests.e2e.test_faults import OWNERS, SERVICES, FaultRun, _kill
from tests.support import free_ports

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

# Fewer reports than the single broker's fault run: three brokers and four services share this machine's cores.
REPORTS = int(os.environ.get("WANGGE_CLUSTER_FAULT_REPORTS", "600"))
RATE = float(os.environ.get("WANGGE_CLUSTER_FAULT_RATE", "40"))
NODES = 3
# The rolling restart's stream and its three restarts, at most (the test's own timeout is 900 s).
ROLLING_SECONDS = float(os.environ.get("WANGGE_CLUSTER_ROLLING_SECONDS", "660"))


class Cluster:
    """Three KRaft nodes run by deploy/local/kafka.sh in a state folder of their own, on free ports below 32768."""

    def __init__(self, state: Path):
        ports = free_ports(2 * NODES)
        self.ports, self.controller_ports = ports[:NODES], ports[NODES:]
        self.state = state
        suite_state = Path(os.environ.get("WANGGE_STATE_DIR", REPO_ROOT / ".local"))
        self.env = {**os.environ, "WANGGE_STATE_DIR": str(state), "WANGGE_KAFKA_NODES": str(NODES),
                    "WANGGE_KAFKA_PORTS": ",".join(map(str, self.ports)),
                    "WANGGE_KAFKA_CONTROLLER_PORTS": ",".join(map(str, self.controller_ports)),
                    # The jars ./dev fetched for the suite's broker: not fetched again.
                    "WANGGE_KAFKA_LIBS": str(suite_state / "kafka" / "libs"), "WANGGE_KAFKA_SECURITY": "none",
                    # Three JVMs starting at once on a shared 2-core machine: more than the single node's 120 s.
                    "WANGGE_KAFKA_START_TIMEOUT": os.environ.get("WANGGE_KAFKA_START_TIMEOUT", "300")}
        self.bootstrap = ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def script(self, *args: str) -> str:
        done = subprocess.run([str(REPO_ROOT / "deploy" / "local" / "kafka.sh"), *args], capture_output=True,
                              text=True, timeout=300, env=self.env)
        assert done.returncode == 0, f"kafka.sh {args}: {done.stdout}\n{done.stderr}"
        return done.stdout

    async def start(self, node: int | None = None) -> None:
        """Every node not running (or node `node`), until the cluster lists all three brokers."""
        await asyncio.to_thread(self.script, "start", *([str(node)] if node else []))

    async def stop(self, node: int) -> None:
        """One node's controlled shutdown (SIGTERM)."""
        await asyncio.to_thread(self.script, "stop", str(node))

    def kill(self, node: int) -> None:
        """SIGKILL one node: no controlled shutdown, no flush."""
        _kill(int((self.state / "run" / f"kafka-node{node}.pid").read_text().strip()))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The three-node cluster of this module, stopped and its folder deleted at the end."""
    running = Cluster(tmp_path_factory.mktemp("kafka-cluster"))
    try:
        running.script("start")
        yield running
    finally:
        subprocess.run([str(REPO_ROOT / "deploy" / "local" / "kafka.sh"), "stop"], env=running.env, timeout=300,
                       capture_output=True)
        shutil.rmtree(running.state, ignore_errors=True)


async def _admin(bootstrap: str) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await asyncio.wait_for(admin.start(), 30)
    return admin


async def replication_of(bootstrap: str, prefix: str) -> dict[str, tuple[set[int], str]]:
    """Every topic with this prefix: the replica counts of its partitions, and its min.insync.replicas."""
    admin = await _admin(bootstrap)
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        described = await asyncio.wait_for(admin.describe_topics(names), 30)
        responses = await asyncio.wait_for(admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, {"min.insync.replicas": None}) for name in names]), 30)
    finally:
        await admin.close()
    min_insync = {}
    for response in responses:
        for resource in response.resources:
            entries = {entry[0]: entry[1] for entry in resource[4]}
            min_insync[resource[3]] = entries.get("min.insync.replicas")
    return {t["topic"]: ({len(p["replicas"]) for p in t["partitions"]}, min_insync.get(t["topic"])) for t in described}


async def until_replication(bootstrap: str, prefix: str, expected: dict[str, tuple[set[int], str]],
                            timeout: float = 30) -> None:
    """Until the prefix's topics have these replica counts and min.insync.replicas, as any broker reports them: a
    config altered or a reassignment done reaches the brokers' metadata moments after the controller takes it."""
    seen: dict = {}

    async def wait() -> None:
        nonlocal seen
        while (seen := await replication_of(bootstrap, prefix)) != expected:
            await asyncio.sleep(0.5)
    try:
        await asyncio.wait_for(wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"after {timeout:g} s: {seen} != {expected}") from None


async def until_fully_in_sync(bootstrap: str, prefix: str, timeout: float = 120) -> None:
    """Until every partition of the prefix's topics, and of the consumer groups' offsets topic, has its three
    replicas in sync (a restarted broker caught up)."""
    async def behind() -> list[str]:
        admin = await _admin(bootstrap)
        try:
            names = [t for t in await admin.list_topics() if t.startswith((prefix, "__consumer_offsets"))]
            described = await asyncio.wait_for(admin.describe_topics(names), 30)
        finally:
            await admin.close()
        return [f"{t['topic']}[{p['partition']}] isr={p['isr']}" for t in described for p in t["partitions"]
                if len(p["isr"]) < NODES or p.get("leader", -1) < 0]

    async def wait() -> None:
        while True:
            try:
                if not await behind():
                    return
            except Exception:  # noqa: BLE001 — a node restarting: ask again
                pass
            await asyncio.sleep(1)
    try:
        await asyncio.wait_for(wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"partitions not back to {NODES} in-sync replicas within {timeout:g} s: "
                             f"{(await behind())[:10]}") from None


async def busiest_node(bootstrap: str, topic: str) -> int:
    """The node leading most partitions of `topic` (its loss moves the most leaders)."""
    admin = await _admin(bootstrap)
    try:
        (described,) = await asyncio.wait_for(admin.describe_topics([topic]), 30)
    finally:
        await admin.close()
    leaders = Counter(p["leader"] for p in described["partitions"])
    return leaders.most_common(1)[0][0]


class ClusterRun(FaultRun):
    """A fault run on the cluster. Only the contract's topics are created beforehand (as `./dev infra` does): the
    owners' task topics are created by routing's outbox on the first dispatch, so they are wangge's own too."""

    def topics_made_beforehand(self) -> list:
        return self.topics.fixed()

    async def close(self) -> None:
        await super().close()
        await drop_schemas(self.settings.model_copy(update={"schema_prefix": self.schemas}))

    def check_replication(self, replication: dict[str, tuple[set[int], str]]) -> None:
        wanted = {s.name for s in self.topics.fixed()} | {self.topics.tasks(o) for o in OWNERS}
        assert wanted <= set(replication), sorted(wanted - set(replication))
        assert {name: r for name, r in replication.items() if r != ({NODES}, "2")} == {}


def cluster_settings(base_settings: Settings, cluster: Cluster) -> Settings:
    return base_settings.model_copy(update={"kafka_bootstrap": cluster.bootstrap})


async def test_every_topic_wangge_creates_on_three_brokers_has_three_copies_and_two_in_sync(cluster, base_settings,
                                                                                           make_settings):
    """The contract's topics, an owner's task topic, and the live process's own (faust's changelogs and its
    assignor's topic): each created with replication factor 3 and min.insync.replicas 2, which wangge read from the
    cluster (the same code gives 1 and 1 on the suite's single broker: tests/integration/test_topics.py)."""
    settings = make_settings(kafka_bootstrap=cluster.bootstrap)
    topics = Topics(settings.topic_prefix)
    await asyncio.wait_for(ensure_topics(settings.kafka_bootstrap, topics.fixed() + [topics.for_owner("huanwei")]), 60)
    live = build_live(settings, manage_runtime=False)
    try:
        await asyncio.wait_for(live.runtime.start(), 60)
        try:
            await live.runtime.wait_until_consuming(120)
        finally:
            await asyncio.wait_for(live.runtime.stop(), 60)
    finally:
        await drop_schemas(settings)
    replication = await replication_of(cluster.bootstrap, settings.topic_prefix)
    changelogs = [name for name in replication if name.startswith(f"{settings.topic_prefix}wangge-supervision-live")]
    assert len(changelogs) >= 3, sorted(replication)  # two tables' changelogs and the assignor's leader topic
    assert {s.name for s in topics.fixed()} | {topics.tasks("huanwei")} <= set(replication)
    assert {name: r for name, r in replication.items() if r != ({NODES}, "2")} == {}


async def test_a_topic_there_already_with_fewer_copies_or_fewer_in_sync_is_raised_or_named_with_what_to_run(
        cluster, caplog):
    """Topics made before wangge's rules reached them (on one broker, by hand): ensure_topics raises the
    min.insync.replicas of one with three copies from 1 to 2 itself, and names one with a single copy with the
    reassignment to run. Run as the warning says, that reassignment gives it three copies, and the next
    ensure_topics raises its min.insync.replicas too."""
    prefix = f"x{uuid.uuid4().hex[:8]}."
    one_copy, few_in_sync = f"{prefix}one-copy", f"{prefix}few-in-sync"
    admin = await _admin(cluster.bootstrap)
    try:
        await asyncio.wait_for(admin.create_topics([
            NewTopic(one_copy, num_partitions=3, replication_factor=1, topic_configs={"min.insync.replicas": "1"}),
            NewTopic(few_in_sync, num_partitions=3, replication_factor=3, topic_configs={"min.insync.replicas": "1"}),
        ]), 30)
    finally:
        await admin.close()
    specs = [TopicSpec(one_copy), TopicSpec(few_in_sync)]
    with caplog.at_level(logging.WARNING, logger="shared.replication"):
        result = await asyncio.wait_for(ensure_topics(cluster.bootstrap, specs), 60)
    assert result.created == () and sorted(result.existing) == sorted([one_copy, few_in_sync])
    assert result.min_insync_raised == (few_in_sync,) and result.fewer_copies == (one_copy,)
    await until_replication(cluster.bootstrap, prefix, {one_copy: ({1}, "1"), few_in_sync: ({3}, "2")})

    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and one_copy in r.getMessage()]
    assert "has 1 copy of each partition where this cluster gives 3" in warning
    assert f"--bootstrap-server {cluster.bootstrap} --reassignment-json-file plan.json --execute" in warning
    plan = json.loads(warning.split("Plan: ", 1)[1])
    assert [len(set(p["replicas"])) for p in plan["partitions"]] == [3, 3, 3]
    plan_file = cluster.state / "plan.json"
    plan_file.write_text(json.dumps(plan))
    await asyncio.to_thread(cluster.script, "reassign", "--reassignment-json-file", str(plan_file), "--execute")

    await until_replication(cluster.bootstrap, prefix, {one_copy: ({3}, "1"), few_in_sync: ({3}, "2")}, 120)
    again = await asyncio.wait_for(ensure_topics(cluster.bootstrap, specs), 60)
    assert again.min_insync_raised == (one_copy,) and again.fewer_copies == ()
    await until_replication(cluster.bootstrap, prefix, {one_copy: ({3}, "2"), few_in_sync: ({3}, "2")})


async def test_a_broker_killed_under_a_stream_of_reports_loses_and_doubles_nothing(cluster, base_settings, tmp_path):
    """SIGKILL the broker leading most partitions of wangge.cases a third into the stream, restart it 5 s later:
    every report is one case, one dispatch and one acknowledgement; every group back to lag 0; the restarted broker
    catches up until every partition has its three copies in sync again."""
    run = ClusterRun(cluster_settings(base_settings, cluster), tmp_path, REPORTS, RATE)
    killed: list[int] = []
    try:
        await run.start()

        async def faults(seconds: float) -> None:
            await asyncio.sleep(seconds / 3)
            node = await busiest_node(cluster.bootstrap, run.topics.cases)  # node i is broker (node.id) i
            cluster.kill(node)
            killed.append(node)
            await asyncio.sleep(5)
            await cluster.start(node)

        await run.stream_with(faults)
        await run.assert_every_report_once()
        await run.assert_groups_catch_up(180)
        assert run.fleet.exited() == {} and run.fleet.starts == {name: 1 for name in SERVICES}
        assert len(killed) == 1
        await until_fully_in_sync(cluster.bootstrap, run.prefix)
        run.check_replication(await replication_of(cluster.bootstrap, run.prefix))
    finally:
        await run.close()


async def test_a_rolling_restart_of_all_three_brokers_loses_and_doubles_nothing(cluster, base_settings, tmp_path):
    """Each broker in turn stopped (controlled shutdown) and started while reports stream in, the next one only
    once every partition has its three copies in sync again: nothing lost, nothing doubled."""
    # A slower stream, so that it lasts through the three restarts (each a controlled shutdown, a start and a
    # catch-up).
    run = ClusterRun(cluster_settings(base_settings, cluster), tmp_path, REPORTS, RATE / 4)
    restarted: list[int] = []
    try:
        await run.start()

        async def faults(seconds: float) -> None:
            await asyncio.sleep(seconds / 6)
            for node in range(1, NODES + 1):
                await cluster.stop(node)
                await cluster.start(node)
                restarted.append(node)
                await until_fully_in_sync(cluster.bootstrap, run.prefix)

        # Three restarts in a row, each a JVM's start and a catch-up: on the shared 2-core machine each took about
        # three minutes, more than the single kill's 400 s bound allows for all three.
        await run.stream_with(faults, within=ROLLING_SECONDS)
        await run.assert_every_report_once()
        await run.assert_groups_catch_up(180)
        assert restarted == [1, 2, 3]
        assert run.fleet.exited() == {} and run.fleet.starts == {name: 1 for name in SERVICES}
    finally:
        await run.close()

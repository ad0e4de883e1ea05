"""PostgreSQL that fails over (issue 20, item 3): the primary of a Patroni cluster killed under a stream of reports.

The test starts its own failover cluster — deploy/local/postgres.sh with WANGGE_PG_HA=1 (deploy/local/patroni.sh):
a one-member etcd and two PostgreSQL members under Patroni, a primary and a synchronous standby — in a state folder
and on ports of its own, and runs the four services as real processes (tests/e2e/test_faults.py's FaultRun) against
it, with the suite's Kafka. The services know the cluster only by its URL: both members, target_session_attrs=
read-write. A third into the stream the primary's machine "dies": its Patroni and its PostgreSQL (postmaster and
every backend) are SIGKILLed together, and Patroni promotes the standby once the dead leader's key expires; or its
PostgreSQL alone crashes (SIGKILL) under a live Patroni, which hands over at once. The services reconnect by themselves (nobody restarts them: each runs in the process it started in, and none restarted itself);
the killed member is started again and comes back as the new primary's synchronous standby (pg_rewind).

Then every report is exactly one case, one dispatch and one acknowledgement SMS — nothing a service was told was
committed is lost (synchronous replication: the promoted standby had it), nothing is doubled (a unit of work cut by
the failover is retried whole) — every consumer group is back at lag 0, and the rejoined member holds every case.
The failover time (kill → the other member accepting writes) and the services' pause are printed (pytest -s / -rP).
"""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

import asyncpg
import httpx
import pytest

from shared.settings import REPO_ROOT, Settings
from tests.conftest import delete_topics
from tests.e2e.test_faults import SERVICES, FaultRun, _kill
from tests.support import free_ports

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

REPORTS = int(os.environ.get("WANGGE_PG_FAILOVER_REPORTS", "600"))
RATE = float(os.environ.get("WANGGE_PG_FAILOVER_RATE", "20"))
MEMBERS = 2


class FailoverCluster:
    """The cluster of this module, run by deploy/local/postgres.sh (WANGGE_PG_HA=1) with its own state and ports."""

    def __init__(self, state: Path):
        ports = free_ports(2 * MEMBERS + 2)
        self.pg_ports, self.rest_ports = ports[:MEMBERS], ports[MEMBERS:2 * MEMBERS]
        self.state = state
        self.env = {**os.environ, "WANGGE_STATE_DIR": str(state), "WANGGE_PG_HA": "1",
                    "WANGGE_PG_PORTS": ",".join(map(str, self.pg_ports)),
                    "WANGGE_PATRONI_PORTS": ",".join(map(str, self.rest_ports)),
                    "WANGGE_ETCD_PORTS": ",".join(map(str, ports[2 * MEMBERS:]))}
        self.base: Path | None = None

    def script(self, *args: str) -> str:
        done = subprocess.run([str(REPO_ROOT / "deploy" / "local" / "postgres.sh"), *args], capture_output=True,
                              text=True, timeout=300, env=self.env)
        assert done.returncode == 0, f"postgres.sh {args}: {done.stdout}\n{done.stderr}"
        return done.stdout

    def dsn(self) -> str:
        return self.script("dsn").strip()

    async def start(self, member: int | None = None) -> None:
        """The whole cluster (until a leader and a synchronous standby), or one member (until it runs)."""
        await asyncio.to_thread(self.script, "start", *([str(member)] if member else []))

    async def _get(self, member: int, path: str) -> httpx.Response | None:
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                return await http.get(f"http://127.0.0.1:{self.rest_ports[member - 1]}{path}")
        except httpx.HTTPError:
            return None

    async def leader(self) -> int | None:
        """The member whose Patroni says it is the primary (REST /primary 200), if one does."""
        for member in range(1, MEMBERS + 1):
            answer = await self._get(member, "/primary")
            if answer is not None and answer.status_code == 200:
                return member
        return None

    async def role(self, member: int) -> str | None:
        """leader, sync_standby, replica… as the cluster (/cluster on any member that answers) sees `member`."""
        for asked in range(1, MEMBERS + 1):
            answer = await self._get(asked, "/cluster")
            if answer is not None and answer.status_code == 200:
                roles = {m["name"]: m["role"] for m in answer.json()["members"]}
                return roles.get(f"member{member}")
        return None

    def kill(self, member: int, how: str) -> None:
        """"machine": the member's machine dies — its Patroni, its postmaster and every PostgreSQL process under it
        SIGKILLed at once: no shutdown, no leader key released, no WAL shipped on the way out. "postgres": its
        PostgreSQL alone (postmaster and every process under it) crashes, its Patroni looking on."""
        assert self.base is not None
        patroni = int((self.base / "run" / f"patroni-member{member}.pid").read_text().strip())
        postmaster = int((self.base / "data" / f"member{member}" / "postmaster.pid").read_text().splitlines()[0])
        children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(int(p.name)) == postmaster]
        if how == "machine":
            _kill(patroni)
        _kill(postmaster)
        for pid in children:
            try:
                _kill(pid)
            except ProcessLookupError:
                pass  # it saw its postmaster die and left first

    async def writable_member(self, dsn: str) -> int | None:
        """Which member a new connection through the cluster's URL reaches, if one accepts writes now."""
        try:
            conn = await asyncpg.connect(dsn, timeout=3)
        except Exception:  # noqa: BLE001 — none accepts writes yet (the failover is under way)
            return None
        try:
            if await conn.fetchval("SELECT pg_is_in_recovery()", timeout=3):
                return None
            port = await conn.fetchval("SELECT inet_server_port()", timeout=3)
        finally:
            await conn.close(timeout=5)
        return self.pg_ports.index(port) + 1

    async def until(self, what: str, check, timeout: float):  # type: ignore[no-untyped-def]
        """Poll `check()` until it returns something truthy, `timeout` seconds at most."""
        async def poll():  # type: ignore[no-untyped-def]
            while True:
                if result := await check():
                    return result
                await asyncio.sleep(0.2)
        try:
            return await asyncio.wait_for(poll(), timeout)
        except TimeoutError:
            raise AssertionError(f"{what}: not within {timeout:g} s") from None


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FailoverCluster]:
    """The failover cluster of this module, stopped and its folders deleted at the end."""
    running = FailoverCluster(tmp_path_factory.mktemp("pg-ha"))
    try:
        running.script("start")
        running.base = Path(running.script("where").strip())
        yield running
    finally:
        subprocess.run([str(REPO_ROOT / "deploy" / "local" / "postgres.sh"), "stop"], env=running.env, timeout=300,
                       capture_output=True)
        if running.base is not None:
            shutil.rmtree(running.base, ignore_errors=True)  # /var/tmp/wangge-…/pg-ha when postgres cannot reach tmp
            if running.base.parent.name.startswith("wangge-") and not any(running.base.parent.iterdir()):
                running.base.parent.rmdir()
        shutil.rmtree(running.state, ignore_errors=True)


class FailoverRun(FaultRun):
    """A fault run whose database is the failover cluster; the suite's broker and PostgreSQL are left alone."""

    async def close(self) -> None:
        self.fleet.stop_all()
        if self._sink is not None:
            self._sink.should_exit = True
            await asyncio.wait_for(self._sink_task, 10)
        await delete_topics(self.settings.model_copy(update={"topic_prefix": self.prefix}))


async def _synchronous_standbys(port: int) -> list[str]:
    """The standbys the primary on `port` waits for at commit (pg_stat_replication's sync_state 'sync')."""
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", timeout=5)
    try:
        names = await conn.fetchval("SHOW synchronous_standby_names", timeout=5)
        rows = await conn.fetch("SELECT application_name FROM pg_stat_replication WHERE sync_state = 'sync'", timeout=5)
    finally:
        await conn.close(timeout=5)
    assert names, "synchronous_standby_names is empty: commits would not wait for the standby"
    return [r["application_name"] for r in rows]


async def _count_on(port: int, table: str) -> int:
    """Rows of `table` on one member (a standby answers reads: hot_standby)."""
    conn = await asyncpg.connect(f"postgresql://wangge@127.0.0.1:{port}/wangge", timeout=5)
    try:
        return await conn.fetchval(f"SELECT count(*) FROM {table}", timeout=10)
    finally:
        await conn.close(timeout=5)


@pytest.mark.parametrize("how", ["machine", "postgres"])
async def test_the_primary_killed_under_a_stream_of_reports_fails_over_and_loses_and_doubles_nothing(
        cluster: FailoverCluster, base_settings: Settings, tmp_path: Path, how: str):
    """"machine": the primary's Patroni dies with it, so its leader key expires (Patroni's ttl) before the standby
    is promoted. "postgres": the primary's PostgreSQL crashes under a live Patroni, which hands over at once
    (primary_start_timeout 0) instead of restarting it in place."""
    dsn = cluster.dsn()
    assert "target_session_attrs=read-write" in dsn and all(f"127.0.0.1:{p}" in dsn for p in cluster.pg_ports)
    run = FailoverRun(base_settings.model_copy(update={"database_url": dsn}), tmp_path, REPORTS, RATE)
    figures: dict[str, float | int] = {}
    try:
        await run.start()
        old = await cluster.leader()
        assert old is not None
        # An acknowledged commit is on both members: the primary waits for the standby's flush.
        assert await _synchronous_standbys(cluster.pg_ports[old - 1]) == [f"member{3 - old}"]

        async def faults(seconds: float) -> None:
            await asyncio.sleep(seconds / 3)
            reports = f'"{run.schemas}intake".reports'
            before = await _count_on(cluster.pg_ports[old - 1], reports)
            killed = time.monotonic()
            cluster.kill(old, how)
            new = await cluster.until("the standby promoted and accepting writes",
                                      lambda: cluster.writable_member(dsn), 120)
            figures["failover_seconds"] = time.monotonic() - killed
            assert new != old
            # (Not compared with `before`: a row the old primary showed may have been one whose commit was still
            # waiting for the standby — never acknowledged to intake, which commits it again.)
            promoted = await _count_on(cluster.pg_ports[new - 1], reports)

            async def services_write_again() -> bool:
                return await _count_on(cluster.pg_ports[new - 1], reports) > promoted
            await cluster.until("the services writing cases again", services_write_again, 120)
            figures["services_resumed_seconds"] = time.monotonic() - killed
            figures["cases_before_kill"] = before
            # The dead machine comes back (a live Patroni has already begun): the member rejoins as a standby. Only now,
            # as bench/faults_devup.py waits for the promotion before its ./dev up: started while its Patroni still held
            # the leader key (its TTL), the old member would resume as the primary — a restart, not a failover. Here
            # the other member accepts writes, and Patroni promotes a standby only once it holds the key.
            await cluster.start(old)

        await run.stream_with(faults)
        await run.assert_every_report_once()
        await run.assert_groups_catch_up(180)
        assert run.fleet.exited() == {}  # none of them died: each reconnected in its own process
        assert run.fleet.starts == {name: 1 for name in SERVICES}
        for name in SERVICES:  # …and none replaced itself (shared/self_restart.py) either
            log = (tmp_path / f"{name}.log").read_text(errors="replace")
            assert "restarts itself" not in log and "needs a restart" not in log, name

        # The killed member is the synchronous standby again, and holds every case.
        async def rejoined() -> bool:
            return await cluster.role(old) == "sync_standby"
        await cluster.until(f"member{old} back as the synchronous standby", rejoined, 180)

        async def replicated() -> bool:
            return await _count_on(cluster.pg_ports[old - 1], f'"{run.schemas}intake".reports') == REPORTS
        await cluster.until(f"every case on member{old}", replicated, 60)
        what = "with its Patroni" if how == "machine" else "under its live Patroni"
        print(f"\nPostgreSQL failover (member{old}'s PostgreSQL SIGKILLed {what}, {figures['cases_before_kill']} of "
              f"{REPORTS} cases in): the standby accepted writes after {figures['failover_seconds']:.1f} s, the "
              f"services wrote cases again after {figures['services_resumed_seconds']:.1f} s")
    finally:
        await run.close()

"""The containers' Patroni configuration (deploy/compose/patroni.yml, the wangge-postgres image's, for compose and
Kubernetes) booted by Patroni itself: Debian's Patroni, PostgreSQL 15 and etcd on this machine — the packages and
versions Dockerfile.postgres installs — two members and one etcd, as compose runs them. Only what cannot be the same
outside a container is moved (addresses, ports, folders); every cluster setting, the pg_hba lines, the passwords'
way in and the post_bootstrap script are the shipped ones.

It shows: a leader and a synchronous standby come up; postgres-bootstrap.sh made the owner (no superuser), the
database and the services' roles; a URL listing both members with target_session_attrs=read-write reaches the
primary with a service's password (without it: tests/security/test_patroni_passwords.py); and the owner, not a superuser, migrates every service's schema
and grants each role its own (python -m shared.migrate, as compose's setup runs it).
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Iterator

import asyncpg
import pytest
import yaml

from shared.kafka_security import SERVICES
from shared.settings import REPO_ROOT
from tests.support import free_ports

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

COMPOSE = REPO_ROOT / "deploy" / "compose"
PASSWORDS = {"owner": "owner-pw-for-the-test", **{s: f"{s}-pw-for-the-test" for s in SERVICES}}
SUPERUSER_PASSWORD, REPLICATION_PASSWORD = "superuser-pw-for-the-test", "replication-pw-for-the-test"
RESTAPI_PASSWORD = "restapi-pw-for-the-test"


def _json(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return json.load(answer)
    except Exception:  # noqa: BLE001 — not answering yet
        return None


def _until(what: str, check, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what} not within {seconds:.0f} s")


class Cluster:
    """etcd and two Patroni members from the shipped patroni.yml, as the postgres user, in a folder of their own."""

    def __init__(self, base: Path):
        self.base = base
        self.etcd_port, peer, *ports = free_ports(6)
        self.etcd_peer = peer
        self.pg_ports, self.rest_ports = ports[:2], ports[2:]
        self.procs: list[subprocess.Popen] = []

    def as_postgres(self, *args: str, env: dict[str, str], log: str) -> subprocess.Popen:
        # A clean environment: Debian's Patroni is Debian's Python program (no virtualenv of ours).
        clean = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", **env}
        with open(self.base / log, "ab") as out:
            proc = subprocess.Popen(["runuser", "-u", "postgres", "--", "env", "-i",
                                     *(f"{k}={v}" for k, v in clean.items()), *args],
                                    cwd=self.base, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    def member_config(self, i: int) -> Path:
        config = yaml.safe_load((COMPOSE / "patroni.yml").read_text(encoding="utf-8"))
        config["restapi"]["listen"] = f"127.0.0.1:{self.rest_ports[i]}"
        pg = config["postgresql"]
        pg["listen"] = f"127.0.0.1:{self.pg_ports[i]}"
        pg["data_dir"] = str(self.base / f"member{i}")
        pg["pgpass"] = str(self.base / f"pgpass{i}")
        pg["parameters"]["unix_socket_directories"] = str(self.base / f"socket{i}")
        (self.base / f"socket{i}").mkdir()
        shutil.chown(self.base / f"socket{i}", "postgres", "postgres")
        config["bootstrap"]["post_bootstrap"] = str(self.base / "postgres-bootstrap.sh")
        path = self.base / f"patroni{i}.yml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    def start(self) -> None:
        shutil.copy(COMPOSE / "postgres-bootstrap.sh", self.base / "postgres-bootstrap.sh")
        os.chmod(self.base / "postgres-bootstrap.sh", 0o755)
        url, peer = f"http://127.0.0.1:{self.etcd_port}", f"http://127.0.0.1:{self.etcd_peer}"
        self.as_postgres("etcd", "--name", "t", "--data-dir", str(self.base / "etcd"), "--listen-client-urls", url,
                         "--advertise-client-urls", url, "--listen-peer-urls", peer,
                         "--initial-advertise-peer-urls", peer, "--initial-cluster", f"t={peer}",
                         env={}, log="etcd.log")
        _until("etcd", lambda: _json(f"{url}/health"), 60)
        configs = [self.member_config(i) for i in range(2)]
        for i, config in enumerate(configs):
            # Compose's member environment (docker-compose.yml x-patroni-env), its addresses moved here.
            env = {"PATRONI_NAME": f"postgres-{i + 1}", "PATRONI_ETCD3_HOSTS": f"127.0.0.1:{self.etcd_port}",
                   "PATRONI_RESTAPI_CONNECT_ADDRESS": f"127.0.0.1:{self.rest_ports[i]}",
                   "PATRONI_POSTGRESQL_CONNECT_ADDRESS": f"127.0.0.1:{self.pg_ports[i]}",
                   "PATRONI_SUPERUSER_USERNAME": "postgres", "PATRONI_SUPERUSER_PASSWORD": SUPERUSER_PASSWORD,
                   "PATRONI_REPLICATION_USERNAME": "replicator", "PATRONI_REPLICATION_PASSWORD": REPLICATION_PASSWORD,
                   "PATRONI_RESTAPI_USERNAME": "patroni", "PATRONI_RESTAPI_PASSWORD": RESTAPI_PASSWORD,
                   **{f"WANGGE_PG_{name.upper()}_PASSWORD": pw for name, pw in PASSWORDS.items()}}
            self.as_postgres("patroni", str(config), env=env, log=f"member{i}.log")
            if i == 0:  # the first initializes the cluster; the second copies it
                _until("a leader", self.leader, 180)
        _until("a synchronous standby", self.pair, 180)

    def pair(self) -> list[dict] | None:
        """Both members, when one leads and the other is its synchronous standby."""
        members = self.members()
        roles = sorted(m["role"] for m in members if m["state"] in ("running", "streaming"))
        return members if self.leader() and len(roles) == 2 and "sync_standby" in roles else None

    def members(self) -> list[dict]:
        for port in self.rest_ports:
            cluster = _json(f"http://127.0.0.1:{port}/cluster")
            if cluster:
                return cluster["members"]
        return []

    def leader(self) -> dict | None:
        return next((m for m in self.members() if m["role"] in ("leader", "master") and m["state"] == "running"),
                    None)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        for i in range(2):  # a PostgreSQL its Patroni left behind
            data = self.base / f"member{i}"
            if (data / "postmaster.pid").exists():
                subprocess.run(["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "stop", "-D",
                                str(data), "-m", "immediate", "-w", "-t", "30"], capture_output=True, timeout=60)

    def url(self, role: str, password: str) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.pg_ports)
        return f"postgresql://{role}:{password}@{hosts}/wangge?target_session_attrs=read-write"


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if os.geteuid() == 0 and not (shutil.which("patroni") and shutil.which("etcd")):
        # As the failover cluster's own start does: Debian's packages, installed on first use (not an order of tests).
        subprocess.run([str(REPO_ROOT / "deploy" / "local" / "patroni.sh"), "install"], check=True, timeout=900)
    for tool in ("patroni", "etcd", "runuser"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing: WANGGE_PG_HA=1 ./dev infra installs Patroni and etcd (Debian's packages)")
    if not Path("/usr/lib/postgresql/15/bin/postgres").exists():
        pytest.fail("PostgreSQL 15 is missing (the image's bin_dir): apt-get install postgresql-15")
    if os.geteuid() != 0:
        pytest.skip("runs Patroni as the postgres user: needs root, as deploy/local/patroni.sh does")
    # Somewhere the postgres user may enter (pytest's own folders are root's alone).
    base = Path("/var/tmp") / f"wangge-patroni-test-{uuid.uuid4().hex[:8]}"
    base.mkdir(mode=0o755)
    shutil.chown(base, "postgres", "postgres")
    one = Cluster(base)
    try:
        one.start()
        yield one
    except BaseException:
        for log in sorted(base.glob("*.log")):
            sys.stderr.write(f"---- {log.name}\n{log.read_text(errors='replace')[-3000:]}\n")
        raise
    finally:
        one.stop()
        shutil.rmtree(base, ignore_errors=True)


async def test_the_shipped_configuration_runs_a_synchronous_pair_with_the_production_roles(cluster: Cluster):
    # A leader and its synchronous standby (the fixture waited for them).
    members = cluster.pair()
    assert members and sorted(m["name"] for m in members) == ["postgres-1", "postgres-2"]

    # The primary, found through both members' URL, with a service's own password.
    intake = await asyncio.wait_for(asyncpg.connect(cluster.url("wangge_intake", PASSWORDS["intake"])), 30)
    try:
        row = await intake.fetchrow("SELECT current_user AS who, pg_is_in_recovery() AS standby, "
                                    "current_setting('synchronous_standby_names') AS sync")
        assert (row["who"], row["standby"]) == ("wangge_intake", False)
        assert row["sync"], "the primary names no synchronous standby"
    finally:
        await intake.close()
    # (No way in without the password: tests/security/test_patroni_passwords.py.)

    # The bootstrap's roles: the owner of the database, no superuser; one login role per service, none a superuser.
    owner = await asyncio.wait_for(asyncpg.connect(cluster.url("wangge", PASSWORDS["owner"])), 30)
    try:
        roles = {r["rolname"]: r["rolsuper"] for r in await owner.fetch(
            "SELECT rolname, rolsuper FROM pg_roles WHERE rolname LIKE 'wangge%'")}
        assert roles == {"wangge": False, **{f"wangge_{s}": False for s in SERVICES}}
        assert await owner.fetchval("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'wangge'") == \
            "wangge"
    finally:
        await owner.close()

    # The owner migrates every schema and grants each role its own, as compose's setup does.
    env = {**os.environ, "WANGGE_DATABASE_URL": cluster.url("wangge", PASSWORDS["owner"]), "WANGGE_SCHEMA_PREFIX": "",
           **{f"WANGGE_{s.upper()}_DATABASE_URL": cluster.url(f"wangge_{s}", PASSWORDS[s]) for s in SERVICES}}
    migrated = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "shared.migrate"], cwd=REPO_ROOT,
                                       env=env, capture_output=True, text=True, timeout=300)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    routing = await asyncio.wait_for(asyncpg.connect(cluster.url("wangge_routing", PASSWORDS["routing"])), 30)
    try:
        assert await routing.fetchval("SELECT has_schema_privilege('routing', 'USAGE')")
        assert not await routing.fetchval("SELECT has_schema_privilege('intake', 'USAGE')")
    finally:
        await routing.close()

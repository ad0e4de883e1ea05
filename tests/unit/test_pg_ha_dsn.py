"""The URL ./dev gives every process (deploy/local/postgres.sh dsn): one server, or with WANGGE_PG_HA=1 every member
of the failover cluster with target_session_attrs=read-write, on ports derived from WANGGE_PG_PORT."""
from __future__ import annotations

import os
import subprocess

import pytest

from shared.settings import REPO_ROOT

pytestmark = pytest.mark.unit


def _dsn(tmp_path, *args: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("WANGGE_PG", "WANGGE_PATRONI", "WANGGE_ETCD"))}
    done = subprocess.run([str(REPO_ROOT / "deploy" / "local" / "postgres.sh"), "dsn", *args], capture_output=True,
                          text=True, timeout=30, env={**clean, "WANGGE_STATE_DIR": str(tmp_path), **env})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_one_server_by_default(tmp_path):
    assert _dsn(tmp_path, WANGGE_PG_PORT="23432") == "postgresql://wangge@127.0.0.1:23432/wangge"
    assert _dsn(tmp_path, "wangge_notify") == "postgresql://wangge_notify@127.0.0.1:15432/wangge"


def test_the_failover_cluster_lists_every_member_and_asks_for_the_one_that_accepts_writes(tmp_path):
    assert _dsn(tmp_path, WANGGE_PG_HA="1", WANGGE_PG_PORT="23432") == \
        "postgresql://wangge@127.0.0.1:23432,127.0.0.1:23433/wangge?target_session_attrs=read-write"
    assert _dsn(tmp_path, "wangge_intake", WANGGE_PG_HA="1", WANGGE_PG_PORTS="21001,21002,21003",
                WANGGE_PATRONI_PORTS="21011,21012,21013") == \
        "postgresql://wangge_intake@127.0.0.1:21001,127.0.0.1:21002,127.0.0.1:21003/wangge?target_session_attrs=read-write"


def test_a_cluster_of_one_member_is_refused_with_the_reason(tmp_path):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WANGGE_PG")}
    done = subprocess.run([str(REPO_ROOT / "deploy" / "local" / "postgres.sh"), "dsn"], capture_output=True, text=True,
                          timeout=30, env={**clean, "WANGGE_STATE_DIR": str(tmp_path), "WANGGE_PG_HA": "1",
                                           "WANGGE_PG_PORTS": "21001", "WANGGE_PATRONI_PORTS": "21011"})
    assert done.returncode != 0 and "2 or 3" in done.stderr

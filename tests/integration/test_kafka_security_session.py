"""The secure broker of the Kafka-security tests lives as long as their session: stopped at its end, and one left running
by a killed session is taken over, so the next session starts cleanly and leaves nothing behind. Run as a session of
its own (a child pytest) on its own state folder and port, so that this session's broker is not touched."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import REPO_ROOT
from tests.integration.test_kafka_security import KAFKA_SH, SECURE_PORT

# Two broker starts and a child session: minutes on a busy machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

PORT = SECURE_PORT + 20  # beside this session's secure broker (and its controller port, + 1)


def _env(state: Path) -> dict[str, str]:
    outer = Path(os.environ.get("WANGGE_STATE_DIR") or REPO_ROOT / ".local")
    return {**os.environ, "WANGGE_STATE_DIR": str(state), "WANGGE_SECURE_KAFKA_PORT": str(PORT),
            "WANGGE_KAFKA_LIBS": os.environ.get("WANGGE_KAFKA_LIBS", str(outer / "kafka" / "libs"))}


def _kafka_sh(state: Path, action: str) -> subprocess.CompletedProcess[str]:
    env = {**_env(state), "WANGGE_KAFKA_SECURITY": "scram", "WANGGE_KAFKA_NODES": "1", "WANGGE_KAFKA_PORTS": "",
           "WANGGE_KAFKA_CONTROLLER_PORTS": "", "WANGGE_KAFKA_PORT": str(PORT),
           "WANGGE_KAFKA_CONTROLLER_PORT": str(PORT + 1)}
    return subprocess.run([str(KAFKA_SH), action], env=env, capture_output=True, text=True, timeout=240,
                          stdin=subprocess.DEVNULL)


def test_a_session_takes_over_a_broker_left_by_a_killed_one_and_stops_it_at_its_end(tmp_path: Path):
    state = tmp_path / "state"
    left = _kafka_sh(state, "start")  # what a session killed before its end leaves running
    assert left.returncode == 0, left.stdout + left.stderr
    try:
        session = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "tests/integration/test_kafka_security.py::test_each_principal_reaches_only_its_own_topics"],
            cwd=REPO_ROOT, env=_env(state), capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
        assert session.returncode == 0, session.stdout[-3000:] + session.stderr[-3000:]
        status = _kafka_sh(state, "status")
        assert status.returncode == 3 and "stopped" in status.stdout, \
            f"the session left its secure broker running:\n{status.stdout}{status.stderr}"
    finally:
        _kafka_sh(state, "stop")

"""A process that says it needs a restart, with no supervisor acting, restarts itself: the same pid runs the same
command afresh (exec), and only after the state has lasted the time allowed — a passing problem restarts nothing."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from shared import self_restart
from shared.settings import REPO_ROOT

pytestmark = pytest.mark.integration

# A process that records each start (its pid), and says it needs a restart from its start on.
_STUCK = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from shared import self_restart
    import os
    starts = Path(sys.argv[1])
    with starts.open("a") as f:
        f.write(f"{os.getpid()}\\n")
    if len(starts.read_text().split()) >= 3:
        sys.exit(0)
    self_restart.watch("stuck", lambda: "a loop stayed stuck", after=1.0, interval=0.1)
    time.sleep(30)
""")


def test_a_process_stuck_with_no_supervisor_restarts_itself_as_the_same_command(tmp_path: Path):
    starts = tmp_path / "starts"
    proc = subprocess.run([sys.executable, "-c", _STUCK, str(starts)], cwd=REPO_ROOT, timeout=60,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    pids = starts.read_text().split()
    assert len(pids) == 3 and len(set(pids)) == 1, pids  # started three times, always as the same process (exec)
    assert "no supervisor restarted it: it restarts itself" in proc.stderr


def test_a_problem_that_passes_restarts_nothing_and_zero_watches_nothing():
    restarts: list[float] = []
    state = {"problem": "stuck"}
    thread = self_restart.watch("passing", lambda: state["problem"], after=1.0, interval=0.05,
                                restart=lambda: restarts.append(time.monotonic()))
    time.sleep(0.6)
    state["problem"] = None  # repaired in-process before the time allowed
    time.sleep(0.6)
    state["problem"] = "stuck again"
    time.sleep(0.6)  # a new stretch: 0.6 s of it is not 1 s
    assert restarts == []
    time.sleep(0.8)
    assert len(restarts) == 1 and thread is not None
    assert self_restart.watch("off", lambda: "stuck", after=0) is None

"""deploy/local/proc-lib.sh: the one way ./dev and the scripts of deploy/local find a daemon by its pid file and stop it
(SIGTERM, a grace period, SIGKILL); no script keeps a copy of that loop."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "deploy" / "local" / "proc-lib.sh"
SCRIPTS = [ROOT / "dev", *sorted((ROOT / "deploy" / "local").glob("*.sh"))]


def bash(script: str) -> str:
    done = subprocess.run(["bash", "-c", f"set -euo pipefail; source {LIB}; {script}"], capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_process_that_ends_on_sigterm_is_not_killed_and_one_that_ignores_it_is(tmp_path: Path):
    polite = bash("sleep 60 & p=$!; stop_pids 5 $p; running $p && echo still running || true")
    assert polite == ""
    stubborn = bash("bash -c 'trap \"\" TERM; sleep 60' & p=$!; sleep 0.3; killed=$(stop_pids 1 $p); "
                    "[[ $killed == $p ]] && echo killed; running $p && echo still running || true")
    assert stubborn == "killed"


def test_a_pid_file_names_a_process_only_while_its_command_line_matches(tmp_path: Path):
    pidfile = tmp_path / "x.pid"
    answers = bash(f"sleep 61 & p=$!; echo $p > {pidfile}; alive {pidfile} 'sleep 61 ' >/dev/null && echo ours; "
                   f"alive {pidfile} 'sleep 6 ' || echo 'not ours'; kill $p")
    assert answers.splitlines() == ["ours", "not ours"]
    pidfile.write_text("not a pid\n")
    assert bash(f"alive {pidfile} sleep || echo none") == "none"


def test_no_script_keeps_its_own_kill_loop():
    sigkill = re.compile(r"(?<!p)kill -(?:KILL|9)\b")  # (./dev's advice to run pkill by hand is not a loop)
    copies = [p.name for p in SCRIPTS if p != LIB and sigkill.search(p.read_text(encoding="utf-8"))]
    assert copies == []
    sourcing = {p.name for p in SCRIPTS if "proc-lib.sh" in p.read_text(encoding="utf-8")}
    assert {"dev", "kafka.sh", "nginx.sh", "patroni.sh", "prometheus.sh", "seaweedfs.sh"} <= sourcing

"""./dev's wait_port_free waits only for a stopping process of this checkout's own (the one its pid file names, as
deploy/local/proc-lib.sh finds a daemon), never for another checkout's service that runs the same module on this
machine: a port held by something not ours is said at once, not after 30 s of waiting for a stranger."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from shared.settings import REPO_ROOT
from tests.support import free_port


def dev_functions(state: Path, script: str, timeout: float = 25) -> subprocess.CompletedProcess[str]:
    """`script` run in bash with ./dev's functions sourced (its state folder `state`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANGGE_")}
    env["WANGGE_STATE_DIR"] = str(state)
    return subprocess.run(["bash", "-c", f"source {REPO_ROOT / 'dev'}; {script}"], env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def serve(port: int, cwd: Path) -> subprocess.Popen[bytes]:
    """python -m http.server on the port (a stand-in service: an HTTP answer on a module's command line)."""
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=cwd,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while dev_functions(cwd, f"port_free {port}").returncode == 0:
        assert server.poll() is None and time.monotonic() < deadline, "the stand-in did not listen"
        time.sleep(0.1)
    return server


def test_a_port_held_by_another_checkout_s_process_of_the_same_module_is_not_waited_for(tmp_path: Path):
    port = free_port()
    stranger = serve(port, tmp_path)  # the same module as "ours", but no pid file of this state folder names it
    try:
        started = time.monotonic()
        done = dev_functions(tmp_path / "state", f"wait_port_free web http.server {port}")
        took = time.monotonic() - started
    finally:
        stranger.kill()
        stranger.wait(10)
    assert done.returncode != 0 and "not from our web" in done.stderr, done.stderr
    assert "stopping" not in done.stdout + done.stderr and took < 10, (took, done.stdout)


def test_our_own_stopping_process_is_waited_for_until_it_frees_the_port(tmp_path: Path):
    port = free_port()
    ours = serve(port, tmp_path)
    (tmp_path / "state" / "run").mkdir(parents=True)
    (tmp_path / "state" / "run" / "web.pid").write_text(f"{ours.pid}\n")  # as start_proc's daemon writes it
    try:
        # it ends two seconds after wait_port_free began to wait for it
        done = dev_functions(tmp_path / "state", f"(sleep 2; kill {ours.pid}) & wait_port_free web http.server {port}"
                                                 f" && port_free {port} && echo free")
    finally:
        ours.kill()
        ours.wait(10)
    assert done.returncode == 0, done.stderr
    assert f"waiting for a stopping web to free port {port}" in done.stdout and done.stdout.endswith("free\n")

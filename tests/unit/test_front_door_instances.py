"""Several instances behind the front door and Prometheus (issue 20, item 3): with WANGGE_INSTANCES=2 the nginx
config deploy/local/nginx.sh renders lists both instances of each service and of the live figures in its
upstream, passes a request on only as nginx's rule for idempotent methods allows, and the Prometheus config
deploy/local/prometheus.sh writes has a target per instance — each config accepted by its own tool (nginx -t in the
render, promtool check config). What the rendered door does with a killed instance: tests/e2e/
test_front_door_instances.py.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from shared.settings import REPO_ROOT

pytestmark = pytest.mark.unit

NGINX_SH = REPO_ROOT / "deploy" / "local" / "nginx.sh"
PROMETHEUS_SH = REPO_ROOT / "deploy" / "local" / "prometheus.sh"
PORTS = {"intake": 28101, "routing": 28102, "supervision": 28103, "notify": 28104, "live": 28105}


def environment(tmp_path: Path, **more: str) -> dict[str, str]:
    """This machine's environment without any WANGGE_ setting, then these ports and `more`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANGGE_")}
    env.update({f"WANGGE_{name.upper()}_PORT": str(port) for name, port in PORTS.items()})
    env.update(WANGGE_STATE_DIR=str(tmp_path / "state"), WANGGE_FRONT_PORT="28100", WANGGE_PROMETHEUS_PORT="29090",
               **more)
    return env


def run(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120, env=env)


def upstreams(conf: str) -> dict[str, list[str]]:
    """Each upstream's servers (address and parameters), from a rendered nginx.conf."""
    return {name: [s.strip() for s in re.findall(r"server\s+([^;]+);", body)]
            for name, body in re.findall(r"upstream\s+(\w+)\s*\{([^}]*)\}", conf)}


def render_nginx(tmp_path: Path, **more: str) -> str:
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        pytest.fail("nginx is missing: run deploy/local/nginx.sh install (./dev install does)")
    done = run(NGINX_SH, "render", tmp_path / "nginx", env=environment(tmp_path, **more))
    assert done.returncode == 0, done.stdout + done.stderr  # the render runs nginx -t on what it wrote
    return (tmp_path / "nginx" / "nginx.conf").read_text(encoding="utf-8")


def prometheus_targets(tmp_path: Path, **more: str) -> dict[str, list[str]]:
    if not shutil.which("promtool"):
        pytest.fail("promtool is missing: run deploy/local/prometheus.sh install (./dev install does)")
    done = run(PROMETHEUS_SH, "config", tmp_path / "prometheus", env=environment(tmp_path, **more))
    assert done.returncode == 0, done.stdout + done.stderr
    written = tmp_path / "prometheus" / "prometheus.yml"
    checked = run("promtool", "check", "config", written, env=dict(os.environ))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = yaml.safe_load(written.read_text(encoding="utf-8"))
    return {job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
            for job in config["scrape_configs"]}


def test_with_two_instances_every_upstream_lists_both_and_only_idempotent_requests_are_passed_on(tmp_path):
    conf = render_nginx(tmp_path, WANGGE_INSTANCES="2")
    found = upstreams(conf)
    for name, port in PORTS.items():
        assert found[name] == [f"127.0.0.1:{port} max_fails=1 fail_timeout=5s",
                               f"127.0.0.1:{port + 1000} max_fails=1 fail_timeout=5s"], name
    # Passed on after an error or a timeout, never with `non_idempotent` (a POST that may have been accepted).
    assert re.findall(r"proxy_next_upstream\s+([^;]+);", conf) == ["error timeout"]
    # Which instance answered is in the access log.
    assert re.search(r"access_log \S+/access\.log upstreams;", conf) and "upstream=$upstream_addr" in conf


def test_one_instance_is_one_server_per_upstream(tmp_path):
    found = upstreams(render_nginx(tmp_path))
    assert found == {name: [f"127.0.0.1:{port} max_fails=1 fail_timeout=5s"] for name, port in PORTS.items()}


def test_an_explicit_list_of_ports_names_the_instances(tmp_path):
    found = upstreams(render_nginx(tmp_path, WANGGE_INTAKE_PORTS="28201,28202,28203"))
    assert [s.split()[0] for s in found["intake"]] == ["127.0.0.1:28201", "127.0.0.1:28202", "127.0.0.1:28203"]
    assert [s.split()[0] for s in found["routing"]] == ["127.0.0.1:28102"]


def test_with_two_instances_prometheus_scrapes_each_as_its_own_instance(tmp_path):
    targets = prometheus_targets(tmp_path, WANGGE_INSTANCES="2")
    assert targets == {**{name: [f"127.0.0.1:{port}", f"127.0.0.1:{port + 1000}"] for name, port in PORTS.items()},
                       "prometheus": ["127.0.0.1:29090"]}


@pytest.mark.parametrize(("setting", "said"), [
    ({"WANGGE_INSTANCES": "0"}, "WANGGE_INSTANCES must be 1…9"),
    ({"WANGGE_INSTANCES": "two"}, "WANGGE_INSTANCES must be 1…9"),
    ({"WANGGE_NOTIFY_PORTS": "28104,80x4"}, "'80x4' is not a number"),
])
def test_a_bad_instance_setting_stops_both_scripts_naming_it(tmp_path, setting, said):
    for script, action in ((NGINX_SH, "render"), (PROMETHEUS_SH, "config")):
        done = run(script, action, tmp_path / script.stem, env=environment(tmp_path, **setting))
        assert done.returncode != 0 and said in done.stderr, (script.name, done.stderr)

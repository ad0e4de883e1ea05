"""The alert rules pass promtool (check and unit tests), say in Chinese what is wrong, and watch real metrics.

promtool comes with Debian's prometheus package (deploy/local/prometheus.sh install, run by ./dev install):
without it these tests fail, they do not skip.
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

RULES_DIR = REPO_ROOT / "deploy" / "prometheus"
ALERTS = RULES_DIR / "alerts.yml"
ALERTS_TEST = RULES_DIR / "alerts_test.yml"
SCRIPT = REPO_ROOT / "deploy" / "local" / "prometheus.sh"
METRICS_DOC = REPO_ROOT / "docs" / "METRICS.md"
CJK = re.compile(r"[\u4e00-\u9fff]")


def promtool() -> str:
    """The promtool executable; a failure (not a skip) when it is missing."""
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool not found: run deploy/local/prometheus.sh install")
    return found


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120, env=env)


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"] for rule in group["rules"]]


def test_promtool_check_rules_passes():
    result = run(promtool(), "check", "rules", ALERTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_unit_tests_of_the_alerts_pass():
    result = run(promtool(), "test", "rules", ALERTS_TEST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_firing_and_staying_quiet():
    cases = [case for test in yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))["tests"]
             for case in test.get("alert_rule_test", [])]
    for rule in rules():
        name = rule["alert"]
        fires = [c for c in cases if c["alertname"] == name and c.get("exp_alerts")]
        quiet = [c for c in cases if c["alertname"] == name and not c.get("exp_alerts")]
        assert fires, f"{name}: no test shows it firing"
        assert quiet, f"{name}: no test shows it staying quiet"
        for case in fires:
            for alert in case["exp_alerts"]:
                # the operators' text is part of what is tested, not left out
                assert set(alert.get("exp_annotations", {})) == {"summary", "description"}, name


def test_every_alert_has_a_severity_and_chinese_text_for_the_operators():
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names)), "an alert name is used twice"
    for rule in rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        for field in ("summary", "description"):
            text = rule["annotations"][field]
            assert CJK.search(text), f"{rule['alert']}: {field} is not in Chinese"


def test_the_issue_alerts_exist():
    wanted = {"WanggeServiceDown", "WanggeConsumerLagGrowing", "WanggeOutboxBacklog", "WanggePartitionStalled",
              "WanggeOverdueRising", "WanggeRepliesFailing", "WanggeMessagesRejectedSpike"}
    assert wanted <= {rule["alert"] for rule in rules()}


def test_alerts_use_only_documented_metrics():
    documented = set(re.findall(r"^\| `(wangge_[a-z0-9_]+)`", METRICS_DOC.read_text(encoding="utf-8"), re.M))
    for rule in rules():
        for name in re.findall(r"\bwangge_[a-z0-9_]+", rule["expr"]):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert name in documented or base in documented, f"{rule['alert']} uses {name}, which docs/METRICS.md does not know"


def test_the_written_config_passes_promtool_and_scrapes_the_ports_of_the_environment(tmp_path: Path):
    env = {**os.environ, "WANGGE_STATE_DIR": str(tmp_path / "state"), "WANGGE_PROMETHEUS_PORT": "29090",
           "WANGGE_INTAKE_PORT": "28101", "WANGGE_ROUTING_PORT": "28102", "WANGGE_SUPERVISION_PORT": "28103",
           "WANGGE_NOTIFY_PORT": "28104", "WANGGE_LIVE_PORT": "off", "WANGGE_PROMETHEUS_SCRAPE_INTERVAL": "2s"}
    promtool()
    written = run(SCRIPT, "config", tmp_path / "conf", env=env)
    assert written.returncode == 0, written.stderr
    config_file = tmp_path / "conf" / "prometheus.yml"
    checked = run(promtool(), "check", "config", config_file)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert targets == {"intake": ["127.0.0.1:28101"], "routing": ["127.0.0.1:28102"],
                       "supervision": ["127.0.0.1:28103"], "notify": ["127.0.0.1:28104"],
                       "live": [], "prometheus": ["127.0.0.1:29090"]}
    assert config["global"]["scrape_interval"] == "2s"
    assert config["rule_files"] == ["alerts.yml"]
    assert (tmp_path / "conf" / "alerts.yml").read_text(encoding="utf-8") == ALERTS.read_text(encoding="utf-8")


def test_the_script_refuses_a_port_that_is_not_a_number(tmp_path: Path):
    env = {**os.environ, "WANGGE_STATE_DIR": str(tmp_path), "WANGGE_NOTIFY_PORT": "80x4"}
    result = run(SCRIPT, "config", tmp_path / "conf", env=env)
    assert result.returncode != 0
    assert "80x4" in result.stderr


def test_the_compose_prometheus_fills_the_same_template_into_a_valid_config(tmp_path: Path):
    compose = yaml.safe_load((REPO_ROOT / "deploy" / "compose" / "docker-compose.yml").read_text(encoding="utf-8"))
    command = compose["services"]["prometheus"]["command"][0]
    assert "/etc/wangge:ro" in " ".join(compose["services"]["prometheus"]["volumes"])
    # The container's shell line, run here with its folders moved to this machine's.
    local = (command.replace("/etc/wangge/", f"{RULES_DIR}/").replace("/prometheus/config", str(tmp_path))
             .split("&& exec", 1)[0])
    result = subprocess.run(["sh", "-c", local], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    written = (tmp_path / "prometheus.yml").read_text(encoding="utf-8")
    assert "@" not in written.split("scrape_configs:", 1)[1], "a placeholder of the template is left unfilled"
    checked = run(promtool(), "check", "config", tmp_path / "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in yaml.safe_load(written)["scrape_configs"]}
    assert jobs["intake"] == ["intake:8101"] and jobs["notify"] == ["notify:8104"] and jobs["live"] == ["live:8105"]

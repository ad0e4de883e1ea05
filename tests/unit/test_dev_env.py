"""`./dev env` prints the environment of the stack that runs: in the production profile (WANGGE_PROFILE=production, or
after `./dev up --production`, which leaves its mark in the state folder) the secure broker and the names of the SASL
settings with the 0600 files that hold them — never a password or a private key."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from shared.settings import REPO_ROOT

PLAIN, SECURE = 26992, 26994  # ports nothing listens on: ./dev env starts nothing


def dev_env(state: Path, **extra: str) -> dict[str, str]:
    """The variables `./dev env` exports (its comment lines under '#')."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANGGE_")}
    env.update({"WANGGE_STATE_DIR": str(state), "WANGGE_KAFKA_PORT": str(PLAIN),
                "WANGGE_SECURE_KAFKA_PORT": str(SECURE), **extra})
    done = subprocess.run([str(REPO_ROOT / "dev"), "env"], env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    exported: dict[str, str] = {"#": ""}
    for line in done.stdout.splitlines():
        if line.startswith("#"):
            exported["#"] += line + "\n"
            continue
        for assignment in line.removeprefix("export ").split(" "):
            name, _, value = assignment.partition("=")
            exported[name] = value
    return exported


def _no_secret(exported: dict[str, str]) -> None:
    assert "WANGGE_KAFKA_PASSWORD" not in exported and "WANGGE_KAFKA_USERNAME" not in exported
    assert not [name for name in exported if name.endswith("_SIGNING_KEY")], "a private signing key was printed"
    assert "WANGGE_SMS_INBOUND_TOKEN" not in exported and "WANGGE_RESIDENT_KEY" not in exported


def test_the_production_profile_prints_the_secure_broker_and_where_its_users_are(tmp_path: Path):
    exported = dev_env(tmp_path, WANGGE_PROFILE="production")
    assert exported["WANGGE_KAFKA_BOOTSTRAP"] == f"127.0.0.1:{SECURE}"
    assert exported["WANGGE_PROFILE"] == "production"
    assert exported["WANGGE_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert exported["WANGGE_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    notes = exported["#"]
    assert "WANGGE_KAFKA_USERNAME" in notes and "WANGGE_KAFKA_PASSWORD" in notes
    assert f"{tmp_path}/production/kafka/<principal>.env" in notes and "0600" in notes
    _no_secret(exported)


def test_after_up_production_the_secure_broker_without_naming_the_profile(tmp_path: Path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "profile").write_text("production\n")  # what ./dev up --production leaves, ./dev down removes
    exported = dev_env(tmp_path)
    assert exported["WANGGE_KAFKA_BOOTSTRAP"] == f"127.0.0.1:{SECURE}"
    _no_secret(exported)
    # WANGGE_PROFILE, when given, wins over the mark.
    assert dev_env(tmp_path, WANGGE_PROFILE="development")["WANGGE_KAFKA_BOOTSTRAP"] == f"127.0.0.1:{PLAIN}"


def test_the_development_profile_prints_the_plain_broker(tmp_path: Path):
    exported = dev_env(tmp_path)
    assert exported["WANGGE_KAFKA_BOOTSTRAP"] == f"127.0.0.1:{PLAIN}"
    assert "WANGGE_PROFILE" not in exported and "WANGGE_KAFKA_SECURITY_PROTOCOL" not in exported

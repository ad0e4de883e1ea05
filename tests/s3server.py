"""The real SeaweedFS the photo-store tests use, started by deploy/local/seaweedfs.sh like ./dev's other parts.

`./dev test` (./dev install) builds `weed`; the session fixture starts it (or finds it running: `WANGGE_MEDIA=s3 ./dev
up` started it), and stops it at the end only if it started it. A server that cannot start is a failure, never a skip.
"""
from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from typing import Iterator

import pytest

from shared.settings import REPO_ROOT

SCRIPT = REPO_ROOT / "deploy" / "local" / "seaweedfs.sh"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str

    def settings(self) -> dict[str, str]:
        """The Settings fields that point a service at this server's bucket."""
        return {"media_s3_endpoint": self.endpoint, "media_s3_bucket": self.bucket,
                "media_s3_access_key": self.access_key, "media_s3_secret_key": self.secret_key}


def _run(action: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), action], capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT,
                          stdin=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[S3Server]:
    was_running = _run("status", 30).returncode == 0
    started = _run("start", 180)
    if started.returncode != 0:
        pytest.fail(f"SeaweedFS did not start (deploy/local/seaweedfs.sh start):\n{started.stdout}{started.stderr}")
    exported = dict(line.removeprefix("export ").split("=", 1) for line in _run("env", 30).stdout.splitlines())
    values = {name: shlex.split(value)[0] for name, value in exported.items()}
    yield S3Server(values["WANGGE_MEDIA_S3_ENDPOINT"], values["WANGGE_MEDIA_S3_BUCKET"],
                   values["WANGGE_MEDIA_S3_ACCESS_KEY"], values["WANGGE_MEDIA_S3_SECRET_KEY"])
    if not was_running:
        _run("stop", 60)

"""Several instances behind the real front door (issue 20, item 3): nginx rendered by deploy/local/nginx.sh with two
intake instances in its upstream.

- Two real intake processes (`python -m services.intake`, the suite's broker and PostgreSQL): both answer in turn;
  one SIGKILLed, every GET is still answered (the ones sent to the dead instance passed on to the other, which the
  access log shows), and a POST is answered by the survivor (a refused connection sent nothing: safe to pass on).
- The rule for a request an instance took and then died on, with a counting upstream in place of the first instance
  (it reads each request whole, counts it, and closes the connection without an answer): a GET is passed on and
  answered by the other instance; a POST is not — it reached one instance exactly once and its caller gets the
  door's 503, never a second delivery.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator

import httpx
import pytest

from shared.settings import REPO_ROOT, Settings
from tests.e2e.frontdoor import FrontDoor, open_nginx
from tests.support import eventually, free_ports, healthy

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SERVICES_LIST = "/open311/v2/services.json"  # intake's, public: any instance answers it alike


def access_log(door: FrontDoor) -> list[str]:
    return (door.conf_dir / "logs" / "access.log").read_text(encoding="utf-8").splitlines()


async def logged(door: FrontDoor, wanted, count: int, *, since: int = 0) -> list[str]:
    """The access log's lines (from line `since`) that `wanted` picks, once there are `count` of them: nginx writes a
    request's line after it has sent the answer, so the client may read the log before the line is there."""
    async def enough() -> list[str] | None:
        lines = [line for line in access_log(door)[since:] if wanted(line)]
        return lines if len(lines) >= count else None

    return await eventually(enough, 10, f"{count} access log lines")


def upstream_of(line: str) -> list[str]:
    """The instances nginx asked for one request, in order (the log's `upstream=A, B`)."""
    return line.split(" upstream=", 1)[1].split(" upstream_status=", 1)[0].split(", ")


# --- two real intake processes -----------------------------------------------------------------------------------


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(15)


@pytest.fixture
async def two_intakes(isolated: Settings, tmp_path: Path) -> AsyncIterator[tuple[list[int], list[subprocess.Popen]]]:
    """Two intake processes on the test's topics and schemas, started one after the other (the first migrates)."""
    ports = free_ports(2)
    env = {**os.environ, "WANGGE_TOPIC_PREFIX": isolated.topic_prefix, "WANGGE_SCHEMA_PREFIX": isolated.schema_prefix,
           "WANGGE_KAFKA_BOOTSTRAP": isolated.kafka_bootstrap, "WANGGE_DATABASE_URL": isolated.database_url,
           "WANGGE_MEDIA_DIR": str(isolated.media_dir)}
    procs: list[subprocess.Popen] = []
    try:
        for i, port in enumerate(ports, 1):
            log = tmp_path / f"intake-{i}.log"
            with open(log, "ab") as out:
                procs.append(subprocess.Popen([sys.executable, "-m", "services.intake"], cwd=REPO_ROOT,
                                              env={**env, "WANGGE_INTAKE_PORT": str(port)}, stdout=out,
                                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
            await asyncio.wait_for(healthy(port, within=120, process=procs[-1], log=log), 130)
        yield ports, procs
    finally:
        for proc in procs:
            await asyncio.to_thread(_kill, proc)


async def test_a_killed_instances_requests_are_answered_by_the_other(two_intakes, tmp_path):
    (first, second), (first_proc, _) = two_intakes
    async with open_nginx(tmp_path / "nginx", {"intake": first},
                          {"WANGGE_INTAKE_PORTS": f"{first},{second}"}) as door, \
            httpx.AsyncClient(base_url=door.url, timeout=30) as client:
        before = [await client.get(SERVICES_LIST) for _ in range(8)]
        assert [r.status_code for r in before] == [200] * 8
        answered_by = {upstream_of(line)[-1] for line in await logged(door, lambda line: SERVICES_LIST in line, 8)}
        assert answered_by == {f"127.0.0.1:{first}", f"127.0.0.1:{second}"}  # both take their turn

        await asyncio.to_thread(_kill, first_proc)
        logged_before = len(access_log(door))  # the 8 GETs' lines are there (read above)
        after = [await client.get(SERVICES_LIST) for _ in range(12)]
        assert [r.status_code for r in after] == [200] * 12
        assert all(r.json() == before[0].json() for r in after)
        lines = await logged(door, lambda line: SERVICES_LIST in line, 12, since=logged_before)
        assert len(lines) == 12 and all(upstream_of(line)[-1] == f"127.0.0.1:{second}" for line in lines)
        # Some were sent to the dead instance first and passed on (then it is left out for 5 s).
        assert any(upstream_of(line) == [f"127.0.0.1:{first}", f"127.0.0.1:{second}"] for line in lines), lines

        # A POST too is answered by the survivor: intake's own refusal of a caller without a credential, not the
        # door's 503.
        posted = await client.post("/api/v1/reports", json={"source": "terminal"})
        assert posted.status_code == 401, posted.text
        [line] = await logged(door, lambda line: '"POST /api/v1/reports' in line, 1)
        assert upstream_of(line)[-1] == f"127.0.0.1:{second}"


# --- the counting upstream ---------------------------------------------------------------------------------------

@dataclass
class Upstream:
    """A stand-in instance on a loopback port: it reads each request whole and records (method, probe id); then it
    either answers 200 or — `dies` — closes the connection without a word, like an instance killed after it
    accepted the request."""

    dies: bool
    seen: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), 10)
            self.seen.append((lines[0].split()[0], headers.get("x-probe", "")))
            if not self.dies:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
                             b"Connection: close\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    def ids(self, method: str) -> list[str]:
        return [probe for m, probe in self.seen if m == method]


async def test_a_get_the_instance_took_and_died_on_is_passed_on_a_post_is_not(tmp_path):
    dying, living = Upstream(dies=True), Upstream(dies=False)
    servers = []
    for upstream in (dying, living):
        upstream.port = free_ports(1)[0]
        servers.append(await asyncio.start_server(upstream.handle, "127.0.0.1", upstream.port))
    try:
        async with open_nginx(tmp_path / "nginx", {"intake": dying.port},
                              {"WANGGE_INTAKE_PORTS": f"{dying.port},{living.port}"}) as door, \
                httpx.AsyncClient(base_url=door.url, timeout=30) as client:
            # POSTs, one at a time, until one reached the dying instance (the first each nginx worker sends does:
            # the turn starts with the first server).
            posts: dict[str, int] = {}
            for _ in range(10):
                probe = uuid.uuid4().hex
                posts[probe] = (await client.post("/api/v1/reports", json={}, headers={"X-Probe": probe})).status_code
                if dying.ids("POST"):
                    break
            assert dying.ids("POST"), "no POST reached the dying instance: the test proved nothing"
            # Each POST reached exactly one instance, once; the one the dying instance took was not sent again.
            assert sorted(dying.ids("POST") + living.ids("POST")) == sorted(posts)
            assert not set(dying.ids("POST")) & set(living.ids("POST"))
            for probe in dying.ids("POST"):
                assert posts[probe] == 503  # the door's answer: the caller knows it may have been accepted
            for probe in living.ids("POST"):
                assert posts[probe] == 200

            # GETs, until one reached the dying instance (it is left out for 5 s after a failure).
            gets: dict[str, httpx.Response] = {}
            for _ in range(30):
                probe = uuid.uuid4().hex
                gets[probe] = await client.get(SERVICES_LIST, headers={"X-Probe": probe})
                if dying.ids("GET"):
                    break
                await asyncio.sleep(0.5)
            assert dying.ids("GET"), "no GET reached the dying instance within 15 s"
            # Every GET answered by the living one; the one the dying instance took was passed on to it.
            assert all(r.status_code == 200 and r.text == "ok" for r in gets.values())
            assert sorted(living.ids("GET")) == sorted(gets)
            assert set(dying.ids("GET")) <= set(living.ids("GET"))
            passed_on = [upstream_of(line) for line in await logged(door, lambda line: f"GET {SERVICES_LIST}" in line,
                                                                     len(gets)) if len(upstream_of(line)) == 2]
            assert passed_on and all(u == [f"127.0.0.1:{dying.port}", f"127.0.0.1:{living.port}"] for u in passed_on)
    finally:
        for server in servers:
            server.close()
            await asyncio.wait_for(server.wait_closed(), 10)

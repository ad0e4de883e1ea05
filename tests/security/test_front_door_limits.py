"""Limits where a stranger reaches: the front door (nginx, rendered from deploy/nginx/nginx.conf.tmpl by
deploy/local/nginx.sh as ./dev up does) and uvicorn behind it (shared/serve.py's options). Each test is an attack —
a slow-header connection, a connection flood, a request flood, an oversized body — and must fail while other
clients still get through.

The services behind nginx are a stand-in ASGI app here: what is under test is the door's limits, which do not
depend on what answers behind them. Clients come from distinct loopback addresses (127.0.0.2, .3, …): nginx
limits per address.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import httpx
import orjson
import pytest
import uvicorn

from shared.serve import server_options
from shared.settings import REPO_ROOT, Settings
from tests.e2e.conftest import free_port

NGINX_SH = REPO_ROOT / "deploy" / "local" / "nginx.sh"
HEADER_TIMEOUT = 10  # nginx's client_header_timeout in the template
CONNECTIONS_PER_ADDRESS = 64  # limit_conn in the template
WAVE = 25  # requests in flight at once from a flooding address


class Backend:
    """Answers every path with the size of the body it got; /api/v1/hold holds the request until released."""

    def __init__(self) -> None:
        self.held = 0
        self.release = asyncio.Event()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        size, more = 0, True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        if scope["path"] == "/api/v1/hold":
            self.held += 1
            try:
                await asyncio.wait_for(self.release.wait(), 60)
            except TimeoutError:
                pass
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": orjson.dumps({"bytes": size})})


@asynccontextmanager
async def served(app: Any, **options: Any) -> AsyncIterator[int]:
    """uvicorn serving `app` on a free loopback port for the block."""
    port = free_port()
    config = {"host": "127.0.0.1", "log_level": "warning", **options, "port": port, "lifespan": "off"}
    server = uvicorn.Server(uvicorn.Config(app, **config))
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        else:
            raise TimeoutError("uvicorn did not start")
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    app = Backend()
    yield app
    app.release.set()


@pytest.fixture
def conf_dir() -> Iterator[Path]:
    """A folder nginx's unprivileged workers can reach (pytest's tmp_path is under a 0700 folder): a body larger than
    nginx's in-memory buffer goes to a temporary file in it."""
    folder = Path(tempfile.mkdtemp(prefix="wangge-nginx-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def door(backend: Backend, conf_dir: Path) -> AsyncIterator[str]:
    """nginx rendered from the shipped template, every upstream the stand-in backend; yields its URL."""
    async with served(backend, timeout_graceful_shutdown=1) as port:
        front = free_port()
        env = dict(os.environ, WANGGE_FRONT_PORT=str(front), **{
            f"WANGGE_{name}_PORT": str(port) for name in ("INTAKE", "ROUTING", "SUPERVISION", "NOTIFY", "LIVE")})
        conf = conf_dir
        await asyncio.wait_for(asyncio.to_thread(
            subprocess.run, [str(NGINX_SH), "render", str(conf)], check=True, env=env, timeout=120), 130)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        proc = await asyncio.create_subprocess_exec(nginx, "-p", str(conf), "-c", str(conf / "nginx.conf"),
                                                    "-e", str(conf / "logs" / "error.log"), "-g", "daemon off;")
        url = f"http://127.0.0.1:{front}"
        try:
            async with httpx.AsyncClient(base_url=url, timeout=2) as client:
                for _ in range(100):
                    try:
                        if (await client.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
                else:
                    raise TimeoutError(f"nginx did not answer; see {conf}/logs/error.log")
            yield url
        finally:
            backend.release.set()
            proc.send_signal(signal.SIGQUIT)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def from_address(url: str, address: str, **kwargs: Any) -> httpx.AsyncClient:
    """A client whose connections come from `address` (one of loopback's 127/8)."""
    timeout = kwargs.pop("timeout", 15)
    return httpx.AsyncClient(base_url=url, transport=httpx.AsyncHTTPTransport(local_address=address, **kwargs),
                             timeout=timeout)


async def seconds_until_cut(url: str, address: str, limit: float) -> float:
    """Open a connection from `address` and send a request's headers a line a second, never finishing them;
    returns how long until the server closes the connection (fails after `limit`)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port), local_addr=(address, 0))
    started = time.monotonic()
    try:
        writer.write(b"GET /api/v1/anything HTTP/1.1\r\nHost: wangge\r\n")
        await writer.drain()

        async def drip() -> None:
            for i in range(int(limit) + 5):
                await asyncio.sleep(1)
                writer.write(f"X-Slow-{i}: a\r\n".encode())
                await writer.drain()

        dripping = asyncio.create_task(drip())
        try:
            # The server's answer (a 408, or nothing) then the end of the stream: the connection is cut.
            while await asyncio.wait_for(reader.read(4096), limit - (time.monotonic() - started)):
                pass
        finally:
            dripping.cancel()
            await asyncio.gather(dripping, return_exceptions=True)
        return time.monotonic() - started
    except (ConnectionResetError, BrokenPipeError):
        return time.monotonic() - started
    finally:
        writer.close()


async def test_a_slow_header_connection_is_cut_at_the_front_door(door: str):
    # While it drips, another client is served at once.
    cut = asyncio.create_task(seconds_until_cut(door, "127.0.0.2", HEADER_TIMEOUT + 5))
    await asyncio.sleep(1)
    async with from_address(door, "127.0.0.3") as other:
        assert (await other.get("/api/v1/ok")).status_code == 200
    seconds = await asyncio.wait_for(cut, HEADER_TIMEOUT + 10)
    assert HEADER_TIMEOUT - 1 <= seconds <= HEADER_TIMEOUT + 3


async def test_a_connection_flood_from_one_address_is_refused_beyond_the_limit(door: str, backend: Backend):
    async with from_address(door, "127.0.0.4", limits=httpx.Limits(max_connections=200)) as flood:
        held = [asyncio.create_task(flood.get("/api/v1/hold", timeout=60)) for _ in range(CONNECTIONS_PER_ADDRESS)]
        try:
            async def all_held() -> None:
                while backend.held < CONNECTIONS_PER_ADDRESS:
                    await asyncio.sleep(0.05)
            await asyncio.wait_for(all_held(), 30)
            refused = await flood.get("/api/v1/ok")
            assert refused.status_code == 429
            assert "请求过于频繁" in refused.json()["detail"]
            # Another address is not starved by the flood.
            async with from_address(door, "127.0.0.5") as other:
                assert (await other.get("/api/v1/ok")).status_code == 200
        finally:
            backend.release.set()
            answers = await asyncio.wait_for(asyncio.gather(*held, return_exceptions=True), 30)
    assert all(isinstance(a, httpx.Response) and a.status_code == 200 for a in answers)


async def test_a_request_flood_from_one_address_gets_429_and_others_still_get_in(door: str):
    # Waves of concurrent requests: far faster than 50 a second even on a loaded machine, where one request after
    # another could be slower than the rate and never be limited.
    served = 0
    refused = None
    async with from_address(door, "127.0.0.6", limits=httpx.Limits(max_connections=WAVE)) as flood:
        for _ in range(2000 // WAVE):
            answers = await asyncio.gather(*(flood.get("/api/v1/ok") for _ in range(WAVE)))
            served += sum(a.status_code == 200 for a in answers)
            refused = next((a for a in answers if a.status_code == 429), None)
            assert all(a.status_code in (200, 429) for a in answers), [a.status_code for a in answers]
            if refused is not None:
                break
    assert refused is not None, f"{served} requests served, none refused"
    assert refused.json()["detail"].startswith("请求过于频繁") and refused.headers["Retry-After"] == "1"
    assert served > 150  # the burst a page needs is served
    async with from_address(door, "127.0.0.7") as other:
        assert (await other.get("/api/v1/ok")).status_code == 200


async def test_bodies_are_refused_at_the_door_beyond_their_paths_limit(door: str):
    async with from_address(door, "127.0.0.8", timeout=30) as client:
        report = await client.post("/api/v1/reports", content=b"x" * (2 * 1024 * 1024))
        assert report.status_code == 413 and "请求内容过大" in report.json()["detail"]
        photo = await client.post("/api/v1/media", content=b"x" * (8 * 1024 * 1024))
        assert photo.status_code == 200 and photo.json()["bytes"] == 8 * 1024 * 1024
        huge = await client.post("/api/v1/media", content=b"x" * (13 * 1024 * 1024))
        assert huge.status_code == 413


# ---- uvicorn: reachable without nginx inside the network ----


async def test_a_slow_header_connection_is_cut_by_a_service_itself(backend: Backend):
    settings = Settings().model_copy(update={"http_header_timeout_seconds": 1.5})
    async with served(backend, **server_options(settings, 0)) as port:
        url = f"http://127.0.0.1:{port}"
        cut = asyncio.create_task(seconds_until_cut(url, "127.0.0.2", 6))
        async with from_address(url, "127.0.0.3") as other:
            assert (await other.get("/ok")).status_code == 200
        seconds = await asyncio.wait_for(cut, 10)
        assert 1.0 <= seconds <= 3.5
        # Whole headers and a body larger than the header limit, in one go: served (only headers are bounded).
        async with from_address(url, "127.0.0.3") as client:
            big = await client.post("/ok", content=b"x" * (settings.http_max_header_bytes * 8))
            assert big.status_code == 200 and big.json()["bytes"] == settings.http_max_header_bytes * 8
            # Headers beyond the limit: refused.
            huge = await client.get("/ok", headers={"X-Big": "y" * (settings.http_max_header_bytes + 1)})
            assert huge.status_code == 431


def test_the_services_serve_with_the_bounds():
    options = server_options(Settings(), 8101)
    assert options["limit_concurrency"] == Settings().http_max_connections and options["timeout_keep_alive"] == 5
    assert options["http"].header_timeout == Settings().http_header_timeout_seconds
    assert options["proxy_headers"] is False

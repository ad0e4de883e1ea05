"""Test helpers: running a service, reading a topic until what we wait for arrives, publishing raw messages."""
from __future__ import annotations

import asyncio
import random
import socket
import subprocess
import uuid
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.clock import Clock
from shared.contracts.envelope import Envelope

S = TypeVar("S")


@asynccontextmanager
async def running(service: S, *, timeout: float = 60, stop_timeout: float = 60) -> AsyncIterator[S]:
    """A built service (or a bare runtime: anything with start, wait_until_consuming and stop) started, consuming its
    topics, and stopped after; starting and joining the groups each within `timeout`, stopping within
    `stop_timeout`."""
    runtime: Any = getattr(service, "runtime", service)
    await asyncio.wait_for(runtime.start(), timeout)
    try:
        await asyncio.wait_for(runtime.wait_until_consuming(timeout), timeout + 5)
        yield service
    finally:
        await asyncio.wait_for(runtime.stop(), stop_timeout)



async def healthy(port: int, *, within: float = 120, process: subprocess.Popen | None = None,
                  log: Path | None = None) -> None:
    """Wait until GET http://127.0.0.1:PORT/healthz answers 200 (a service process has started its runtime), at most
    `within` seconds; fail at once if `process` (the service's, when the test started it) exits first. A failure
    says so with the tail of `log`, the service's output."""
    def tail() -> str:
        return f": {log.read_text(errors='replace')[-2000:]}" if log is not None and log.exists() else ""

    deadline = asyncio.get_running_loop().time() + within
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            if process is not None and process.poll() is not None:
                raise AssertionError(f"the service on port {port} exited ({process.returncode}){tail()}")
            try:
                if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if asyncio.get_running_loop().time() >= deadline:
                raise AssertionError(f"the service on port {port} was not healthy within {within:g} s{tail()}")
            await asyncio.sleep(0.3)

class TopicReader:
    """A consumer on one or more topics from the beginning, with its own group, for assertions."""

    def __init__(self, bootstrap: str, *topics: str):
        self._consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            group_id=f"test-reader-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self.seen: list[tuple[str, bytes | None, dict]] = []

    async def __aenter__(self) -> "TopicReader":
        await asyncio.wait_for(self._consumer.start(), 20)
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Bounded: leaving the group waits on a coordinator that may not answer (a broker just restarted or busy),
        # and a reader that cannot leave must not hold the test (it held one for its whole 120 s in CI).
        try:
            await asyncio.wait_for(self._consumer.stop(), 15)
        except asyncio.TimeoutError:
            pass

    async def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 15) -> dict:
        """The first message (as a dict, with '_topic' and '_key') matching predicate; TimeoutError otherwise."""
        for message in self.seen:
            if predicate(message[2]):
                return message[2]

        async def scan() -> dict:
            while True:
                batch = await self._consumer.getmany(timeout_ms=200)
                fresh = [self._decode(record) for records in batch.values() for record in records]
                # Keep every message of the batch, even after a match: the next wait_for may want it.
                self.seen.extend(fresh)
                for _topic, _key, body in fresh:
                    if predicate(body):
                        return body

        return await asyncio.wait_for(scan(), timeout)

    @staticmethod
    def _decode(record) -> tuple[str, bytes | None, dict]:
        try:
            body = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            body = {"_raw": record.value}
        if not isinstance(body, dict):
            body = {"_raw": body}
        body["_topic"] = record.topic
        body["_key"] = record.key.decode() if record.key else None
        return record.topic, record.key, body

    async def all_within(self, seconds: float, predicate: Callable[[dict], bool]) -> list[dict]:
        """Every matching message seen within `seconds` (to prove something did NOT happen twice)."""
        try:
            await self.wait_for(lambda _m: False, timeout=seconds)
        except asyncio.TimeoutError:
            pass
        return [m[2] for m in self.seen if predicate(m[2])]


# publish(..., signed_as=OWNER): signed as the service that owns the event's type (shared/signing.EMITTERS), with the
# key the services of this test run know — as if that service had published it. None: unsigned (an attacker).
OWNER = "owner-of-the-type"


def signature_of(payload: bytes, signed_as: str | None = OWNER, *, topic: str,
                 key: str | bytes | None = None) -> list[tuple[str, bytes]] | None:
    """The headers of `payload` on `topic` under `key` signed as `signed_as` (a signer's name, or OWNER: the emitter
    of its type)."""
    from shared.settings import Settings
    from shared.signing import ADMIN, EMITTERS, signer_for

    if signed_as is None:
        return None
    if signed_as == OWNER:
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        emitters = EMITTERS.get(body.get("type")) if isinstance(body, dict) and isinstance(body.get("type"), str) \
            else None
        if not emitters:
            return None
        signed_as = ADMIN if ADMIN in emitters else sorted(emitters)[0]
    return signer_for(Settings(), signed_as).headers(payload, topic=topic, key=key)


async def publish(bootstrap: str, topic: str, value: bytes | dict | Envelope, key: str | None = None, *,
                  signed_as: str | None = OWNER, headers: list[tuple[str, bytes]] | None = None) -> None:
    """Publish one message as an outside producer would (raw bytes, a dict, or an envelope). An event of a service
    is signed as that service unless `signed_as` says otherwise (None: unsigned); `headers` replace the signature."""
    if isinstance(value, Envelope):
        payload = value.to_json()
    elif isinstance(value, dict):
        payload = orjson.dumps(value)
    else:
        payload = value
    if headers is None:
        headers = signature_of(payload, signed_as, topic=topic, key=key)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await asyncio.wait_for(producer.start(), 20)
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, payload, key=key.encode() if key else None,
                                                      headers=headers), 20)
    finally:
        await producer.stop()


async def grant(settings, *services, token: str, name: str, role: str, owner_code: str | None = None,
                worker_id: str | None = None, device_id: str | None = None, timeout: float = 30,
                signing_key=None) -> None:
    """Issue a credential through wangge.credentials and wait until every given service has learnt it; with
    `signing_key` (an Ed25519PrivateKey), a machine credential that signs its Kafka messages with it."""
    from shared.credentials import issued, publish as publish_credentials

    await publish_credentials(settings, [issued(token, name=name, role=role, owner_code=owner_code,
                                                worker_id=worker_id, device_id=device_id, signing_key=signing_key)])
    await until_credential(token, *services, valid=True, timeout=timeout)


async def until_credential(token: str, *services, valid: bool, timeout: float = 30) -> None:
    """Wait until every given service holds `token` as valid (or, with valid=False, no longer does): credentials and
    their revocations reach each service on wangge.credentials, a moment after they are issued or ended."""
    from shared.auth import token_hash

    digest = token_hash(token)

    async def learnt() -> None:
        for service in services:
            while valid != await service.runtime.pool.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM credentials WHERE token_sha256 = $1 AND revoked_at IS NULL)", digest):
                await asyncio.sleep(0.1)

    await asyncio.wait_for(learnt(), timeout)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 30, what: str = "") -> Any:
    """Poll an async check until it returns something truthy, and return that; AssertionError naming `what` if it
    does not within `timeout` s. For what each service learns from the stream a moment later than another."""
    async def poll() -> Any:
        while not (found := await check()):
            await asyncio.sleep(0.1)
        return found
    try:
        return await asyncio.wait_for(poll(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"not within {timeout} s: {what or check}") from None


# Ports for the servers a test starts, taken below the kernel's ephemeral range (32768–60999 here): a port picked
# there (bind to 0, close, hand it on) can be given to an outgoing connection — a client of Kafka, say — before
# the server binds it, and the server then fails to start (or another process answers in its place).
_TEST_PORTS = (20000, 29999)


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that nothing holds now, outside the ephemeral range."""
    chosen: list[int] = []
    held: list[socket.socket] = []
    try:
        while len(chosen) < count:
            port = random.randint(*_TEST_PORTS)
            if port in chosen:
                continue
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            held.append(sock)
            chosen.append(port)
    finally:
        for sock in held:
            sock.close()
    return chosen


def free_port() -> int:
    """One loopback port that nothing holds now, outside the ephemeral range (see free_ports)."""
    return free_ports(1)[0]


def handlers_statements(statements: list[str]) -> int:
    """How many of a connection's logged statements a handler made: not the transaction's own, and not asyncpg
    looking a type up (once per connection and type, so on whichever pooled connection meets the type first —
    counted, it made a batch of 40 look dearer than one case at random)."""
    return len([s for s in statements if not s.startswith(("SAVEPOINT", "RELEASE", "COMMIT", "BEGIN"))
                and "typeinfo_tree" not in s and "set_config('jit'" not in s])


class StoppedClock(Clock):
    """A clock handed to one service's build(clock=…): it reads `at` until the test moves it, so a test sees what
    the service does at a moment without sleeping, and without moving every service's clock (shared.clock.move_clock)."""

    def __init__(self, at: datetime):
        self.at = at

    def now(self) -> datetime:
        return self.at

    def move(self, by: timedelta) -> None:
        self.at += by


class SmsGateway:
    """A minimal HTTP/1.1 SMS gateway on loopback that notify cannot tell from a real one (`async with`; its address
    is `url`): answers 200 after `delay` seconds — the very first request after `slow_first` instead, and every
    request after the first `answer_first` only once `release()` is called —, counts each Idempotency-Key it gets,
    the requests, what was in flight at once and the connections opened (kept-alive ones are reused)."""

    def __init__(self, delay: float, answer_first: int | None = None, slow_first: float = 0.0):
        self.delay = delay
        self.answer_first = answer_first
        self.slow_first = slow_first
        self.slow_key: str | None = None  # set: that key's request is the slow one, not the first to come
        self.slow_gate: asyncio.Event | None = None  # set: the slow one is answered when this is set, not on a timer
        self.admitted = 0
        self.slow_answered = False
        self.in_flight = 0
        self.most_in_flight = 0
        self.connections = 0
        self.received: dict[str, int] = {}  # idempotency key → times received
        self.log: list[tuple[str, str]] = []  # ("in" or "out", idempotency key), in the order they happened
        self._released = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None

    @property
    def requests(self) -> int:
        return sum(self.received.values())

    def release(self) -> None:
        """Answer every request from now on (those held too)."""
        self.answer_first = None
        self._released.set()

    async def __aenter__(self) -> "SmsGateway":
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self._server = await asyncio.start_server(self._serve, sock=sock)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/sms"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.release()
        await asyncio.wait_for(self._server.wait_closed(), 10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
                headers = {k.strip().lower(): v.strip() for k, v in headers.items()}
                body = orjson.loads(await reader.readexactly(int(headers.get(b"content-length", b"0"))))
                key = headers[b"idempotency-key"].decode()
                assert key == body["ref"]
                self.received[key] = self.received.get(key, 0) + 1
                self.log.append(("in", key))
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
                try:
                    if self.answer_first is not None and self.admitted >= self.answer_first:
                        await self._released.wait()  # a gateway that took the message and has not answered yet
                    self.admitted += 1
                    slow = self.slow_first > 0 and (key == self.slow_key if self.slow_key else self.admitted == 1)
                    if slow and self.slow_gate is not None:
                        await self.slow_gate.wait()
                    else:
                        await asyncio.sleep(self.slow_first if slow else self.delay)
                    self.slow_answered = self.slow_answered or slow
                finally:
                    self.in_flight -= 1
                self.log.append(("out", key))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

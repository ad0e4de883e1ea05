"""Channels a reply can go out on. SMS today; e-mail or a webhook implement the same interface."""
from __future__ import annotations

import asyncio
from typing import Any, Protocol

import aiohttp
import orjson

from shared.personal_data import mask_personal

from services.notify.domain.delivery import AttemptResult, Message, Outcome

SEND_TIMEOUT_SECONDS = 5.0
# Connections to the gateway, all kept alive: one client (aiohttp's session) for the delivery worker's life. The worker
# sends at most this many at once (the same setting, WANGGE_SMS_GATEWAY_CONNECTIONS), so a message never waits for a
# connection nor opens one it then throws away. A send takes the gateway's answer time plus whatever both ends wait
# for a CPU, and on cores shared with Kafka, PostgreSQL and the other services that wait is many times a gateway's
# answer: the sends in flight, more than the gateway, set how fast a burst of replies goes out.
# aiohttp, not httpx: on this 2-core machine an httpx POST cost 2.3 ms of CPU (httpcore's pool looks at every
# connection, with a poll() each, for every request; headers and body are two send()s), aiohttp's 0.33 ms — the SMS
# sends were 37 % of notify's time in a fault drill. Each send is bounded by the timeout (connecting, reading).
GATEWAY_CONNECTIONS = 64
# 4xx that mean "not now" rather than "never".
_TRANSIENT_CLIENT_ERRORS = {408, 425, 429}


class Channel(Protocol):
    """Sends one message and says what happened; opened (async with) for the life of a worker loop."""

    name: str

    async def __aenter__(self) -> "Channel": ...

    async def __aexit__(self, *exc: Any) -> None: ...

    async def send(self, message: Message) -> AttemptResult:
        """One attempt; never raises for the gateway's answers or outages, only reports them."""
        ...


class SmsChannel:
    """The SMS gateway over HTTP: POST {to, text, ref} with Idempotency-Key: ref; the gateway de-duplicates."""

    name = "sms"

    def __init__(self, gateway_url: str, timeout: float = SEND_TIMEOUT_SECONDS, connections: int = GATEWAY_CONNECTIONS):
        self._url = gateway_url
        self._timeout = timeout
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "SmsChannel":
        # No bound on waiting for a free connection (each send before it is bounded): the worker keeps at most
        # twice as many rows claimed as there are connections, so a row to a gateway that hangs fails within 2 × 5 s,
        # inside the 60 s lease.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connections, limit_per_host=self._connections),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._timeout, sock_read=self._timeout),
            trust_env=False, cookie_jar=aiohttp.DummyCookieJar())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, message: Message) -> AttemptResult:
        """POST the message; 2xx delivered, 4xx refused, 5xx/timeouts/connection errors unavailable."""
        assert self._session is not None, "SmsChannel used outside `async with`"
        try:
            # The delivery id is the idempotency key, in the body and the header (gateways read one or
            # the other): a re-send after a crash or a lost answer reaches the resident once. Redirects are not
            # followed (a gateway does not move its API under a message).
            async with self._session.post(
                self._url, data=orjson.dumps({"to": message.to, "text": message.text, "ref": message.ref}),
                headers={"Content-Type": "application/json", "Idempotency-Key": message.ref}, allow_redirects=False,
            ) as response:
                status, body = response.status, await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            return AttemptResult(Outcome.UNAVAILABLE, mask_personal(f"gateway unreachable: {type(exc).__name__}: {exc}")[:500])
        if 200 <= status < 300:
            return AttemptResult(Outcome.DELIVERED)
        # Gateways echo the number in their errors; what we keep (last_error, reply.issued) must not.
        detail = mask_personal(f"gateway answered {status}: {body.decode('utf-8', 'replace')[:300]}")
        if 400 <= status < 500 and status not in _TRANSIENT_CLIENT_ERRORS:
            return AttemptResult(Outcome.REFUSED, detail)
        return AttemptResult(Outcome.UNAVAILABLE, detail)

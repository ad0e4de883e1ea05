"""Channels a reply can go out on. SMS today; e-mail or a webhook implement the same interface."""
from __future__ import annotations

from typing import Any, Protocol

import httpx

from shared.personal_data import mask_personal

from services.notify.domain.delivery import AttemptResult, Message, Outcome

SEND_TIMEOUT_SECONDS = 5.0
# Connections to the gateway, all kept alive. The delivery worker sends up to 100 at once; httpx's default
# (100 connections, 20 kept) opened and closed 80 of them per batch, and its pool scans every connection for
# every request. 16 kept-alive connections carry 3,200 messages a second from a gateway answering in 5 ms.
# A message waits for a free connection without a limit of its own (pool=None): each send before it is bounded
# by the timeout, so a batch of 100 to a gateway that hangs fails within 7 × 5 s, inside the 60 s lease.
GATEWAY_CONNECTIONS = 16
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

    def __init__(self, gateway_url: str, timeout: float = SEND_TIMEOUT_SECONDS):
        self._url = gateway_url
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> "SmsChannel":
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(self._timeout, pool=None), limits=httpx.Limits(
            max_connections=GATEWAY_CONNECTIONS, max_keepalive_connections=GATEWAY_CONNECTIONS))
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def send(self, message: Message) -> AttemptResult:
        """POST the message; 2xx delivered, 4xx refused, 5xx/timeouts/connection errors unavailable."""
        assert self._client is not None, "SmsChannel used outside `async with`"
        try:
            # The delivery id is the idempotency key, in the body and the header (gateways read one or
            # the other): a re-send after a crash or a lost answer reaches the resident once.
            response = await self._client.post(
                self._url, json={"to": message.to, "text": message.text, "ref": message.ref},
                headers={"Idempotency-Key": message.ref},
            )
        except httpx.HTTPError as exc:
            return AttemptResult(Outcome.UNAVAILABLE, mask_personal(f"gateway unreachable: {type(exc).__name__}: {exc}")[:500])
        if response.is_success:
            return AttemptResult(Outcome.DELIVERED)
        # Gateways echo the number in their errors; what we keep (last_error, reply.issued) must not.
        detail = mask_personal(f"gateway answered {response.status_code}: {response.text[:300]}")
        if 400 <= response.status_code < 500 and response.status_code not in _TRANSIENT_CLIENT_ERRORS:
            return AttemptResult(Outcome.REFUSED, detail)
        return AttemptResult(Outcome.UNAVAILABLE, detail)

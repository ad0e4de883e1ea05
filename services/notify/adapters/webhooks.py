"""The webhook channel and the integrators' endpoints (notify's webhook_endpoints table)."""
from __future__ import annotations

import time
import uuid
from typing import Any, Callable

import asyncpg
import httpx
import orjson

from shared.clock import now
from shared.personal_data import mask_personal

from services.notify.domain.delivery import AttemptResult, Message, Outcome
from services.notify.domain.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

SEND_TIMEOUT_SECONDS = 5.0
_TRANSIENT_CLIENT_ERRORS = {408, 425, 429}


class WebhookChannel:
    """POSTs a signed JSON body to the endpoint a delivery names (by id; its URL read from the table now)."""

    name = "webhook"

    def __init__(self, pool: Callable[[], asyncpg.Pool], timeout: float = SEND_TIMEOUT_SECONDS):
        self._pool = pool  # the runtime's pool exists only once it started: looked up at send time
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> "WebhookChannel":
        # No redirects: a receiver cannot send our request (and its signature) on to an address of its choosing.
        self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False, trust_env=False)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def send(self, message: Message) -> AttemptResult:
        assert self._client is not None, "WebhookChannel used outside `async with`"
        try:
            endpoint_id = uuid.UUID(message.to)
        except ValueError:
            return AttemptResult(Outcome.REFUSED, "not a configured webhook endpoint")
        endpoint = await endpoint_by_id(self._pool(), endpoint_id)
        if endpoint is None or not endpoint["enabled"]:
            return AttemptResult(Outcome.REFUSED, "the webhook endpoint was removed or disabled")
        stamp = int(time.time())
        body = orjson.dumps({"delivery_id": message.ref, "case_no": message.case_no, "kind": message.kind,
                             "text": message.text, "signed_at": now().isoformat()})
        headers = {"Content-Type": "application/json", "Idempotency-Key": message.ref, DELIVERY_HEADER: message.ref,
                   TIMESTAMP_HEADER: str(stamp), SIGNATURE_HEADER: sign(endpoint["secret"], stamp, body)}
        try:
            response = await self._client.post(endpoint["url"], content=body, headers=headers)
        except httpx.HTTPError as exc:
            return AttemptResult(Outcome.UNAVAILABLE, f"webhook unreachable: {type(exc).__name__}")
        if response.is_success:
            return AttemptResult(Outcome.DELIVERED)
        detail = mask_personal(f"webhook answered {response.status_code}: {response.text[:200]}")
        if response.is_redirect:
            return AttemptResult(Outcome.REFUSED, f"webhook answered a redirect ({response.status_code}): not followed")
        if 400 <= response.status_code < 500 and response.status_code not in _TRANSIENT_CLIENT_ERRORS:
            return AttemptResult(Outcome.REFUSED, detail)
        return AttemptResult(Outcome.UNAVAILABLE, detail)


async def endpoint_by_id(pool: asyncpg.Pool | asyncpg.Connection, endpoint_id: uuid.UUID) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM webhook_endpoints WHERE id = $1", endpoint_id)


async def enabled_endpoints(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT id::text AS id, sources FROM webhook_endpoints WHERE enabled ORDER BY created_at")


# The same as one jsonb value ([{"id": …, "sources": […]}, …]): a scalar subquery, to ride along with other reads.
ENABLED_ENDPOINTS_JSON = """SELECT coalesce(jsonb_agg(jsonb_build_object('id', id::text, 'sources', sources)
                                       ORDER BY created_at), '[]'::jsonb)
                              FROM webhook_endpoints WHERE enabled"""


async def list_endpoints(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM webhook_endpoints ORDER BY created_at")


async def add_endpoint(conn: asyncpg.Connection, *, name: str, url: str, secret: str, sources: list[str],
                       created_by: str) -> asyncpg.Record | None:
    """The new endpoint, or None if the name is taken."""
    return await conn.fetchrow(
        """INSERT INTO webhook_endpoints (id, name, url, secret, sources, created_by) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (name) DO NOTHING RETURNING *""",
        uuid.uuid4(), name, url, secret, sources, created_by)


async def disable_endpoint(conn: asyncpg.Connection, endpoint_id: uuid.UUID) -> bool:
    return bool(await conn.fetchval(
        "UPDATE webhook_endpoints SET enabled = false, updated_at = now() WHERE id = $1 RETURNING true", endpoint_id))

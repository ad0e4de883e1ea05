"""The outbox relay: sends what the unit of work wrote, in order, then forgets it."""
from __future__ import annotations

import asyncio
import logging

import asyncpg

from shared.db import TRANSIENT_DB_ERRORS
from shared.kafka import TRANSIENT_KAFKA_ERRORS, OutgoingMessage, Producer
from shared.metrics import OUTBOX_BACKLOG, OUTBOX_RELAYED
from shared.topics import Topics, ensure_topics

log = logging.getLogger(__name__)

BATCH = 500


class OutboxRelay:
    """One active relay per schema (an advisory lock elects it), so events keep their order per case."""

    def __init__(self, pool: asyncpg.Pool, schema: str, producer: Producer, service: str, poll_seconds: float,
                 topics: Topics, bootstrap: str):
        self._topics = topics
        self._bootstrap = bootstrap
        self._known_topics: set[str] = set()
        self._pool = pool
        self._schema = schema
        self._producer = producer
        self._service = service
        self._poll = poll_seconds
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """Relay until cancelled; survives database and broker outages by retrying."""
        while True:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except (*TRANSIENT_DB_ERRORS, *TRANSIENT_KAFKA_ERRORS) as exc:
                log.warning("outbox relay of %s interrupted (%s); retrying", self._schema, exc)
                await asyncio.sleep(1)

    async def _lead(self) -> None:
        async with self._pool.acquire() as conn:
            # Session-level lock, held while this connection lives: the other instances wait.
            while not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", f"outbox:{self._schema}"):
                await asyncio.sleep(2)
            channel = f"{self._schema}_outbox"
            await conn.add_listener(channel, self._on_notify)
            try:
                while True:
                    sent = await self.relay_once(conn)
                    if sent < BATCH:
                        self._wake.clear()
                        try:
                            await asyncio.wait_for(self._wake.wait(), self._poll)
                        except asyncio.TimeoutError:
                            pass
            finally:
                await conn.remove_listener(channel, self._on_notify)
                await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", f"outbox:{self._schema}")

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def relay_once(self, conn: asyncpg.Connection) -> int:
        """Send the oldest batch of outbox rows and delete them once Kafka has acknowledged all."""
        rows = await conn.fetch(
            "SELECT seq, topic, key, event_type, payload FROM outbox ORDER BY seq LIMIT $1", BATCH
        )
        if rows:
            await self._ensure_topics({r["topic"] for r in rows})
            await self._producer.send_all(
                [OutgoingMessage(r["topic"], r["key"], bytes(r["payload"]), r["event_type"]) for r in rows]
            )
            # A crash between the send and this delete sends them again: consumers de-duplicate on id.
            await conn.execute("DELETE FROM outbox WHERE seq = ANY($1::bigint[])", [r["seq"] for r in rows])
            OUTBOX_RELAYED.labels(self._service).inc(len(rows))
        return len(rows)

    async def _ensure_topics(self, names: set[str]) -> None:
        # A topic that does not exist (a new owner; a broker that does not create topics itself)
        # would hold back every later event of this schema: create it with its spec first.
        unknown = names - self._known_topics
        if unknown:
            await ensure_topics(self._bootstrap, [self._topics.spec_for(name) for name in sorted(unknown)])
            self._known_topics |= unknown

    async def measure_backlog(self, every_seconds: float = 5.0) -> None:
        """Keep the backlog gauge true even while Kafka is down and the relay cannot send."""
        while True:
            try:
                OUTBOX_BACKLOG.labels(self._service).set(await self._pool.fetchval("SELECT count(*) FROM outbox"))
            except TRANSIENT_DB_ERRORS as exc:
                log.warning("cannot measure the outbox backlog of %s: %s", self._schema, exc)
            await asyncio.sleep(every_seconds)

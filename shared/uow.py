"""The unit of work: one transaction for the effect, the events it emits and the event it consumed."""
from __future__ import annotations

from typing import Any

import asyncpg

from shared.contracts.envelope import Envelope


class UnitOfWork:
    """`async with UnitOfWork(pool) as uow: …; await uow.commit()` — rolls back unless committed."""

    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool
        self._committed = False
        self._outbox: list[tuple[str, str | None, str, str, bytes]] = []
        self.conn: asyncpg.Connection

    async def __aenter__(self) -> "UnitOfWork":
        self.conn = await self._pool.acquire()
        self._tx = self.conn.transaction()
        await self._tx.start()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if not self._committed:
                await self._tx.rollback()
        finally:
            await self._pool.release(self.conn)

    async def claim(self, consumer: str, event_id: str) -> bool:
        """Record that `consumer` applies `event_id` now; False if it already did (skip the effect)."""
        row = await self.conn.fetchval(
            "INSERT INTO processed_events(consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1",
            consumer,
            event_id,
        )
        return row is not None

    def emit(self, topic: str, envelope: Envelope, key: str | None = None) -> None:
        """Queue an event for the outbox; it is written at commit, in this transaction."""
        key = key if key is not None else envelope.case_id
        self._outbox.append((topic, key, envelope.id, envelope.type, envelope.to_json()))

    async def commit(self) -> None:
        """Write queued events to the outbox and commit everything at once."""
        if self._outbox:
            await self.conn.executemany(
                "INSERT INTO outbox(topic, key, event_id, event_type, payload) VALUES ($1, $2, $3, $4, $5)",
                self._outbox,
            )
            self._outbox.clear()
        await self._tx.commit()
        self._committed = True

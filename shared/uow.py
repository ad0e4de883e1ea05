"""The unit of work: one transaction for the effect, the events it emits and the event it consumed."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

import asyncpg

from shared.contracts.envelope import Envelope
from shared.db import ended_clean
from shared.errors import is_transient

log = logging.getLogger(__name__)


# A unit of work runs the same few statements again and again with arrays of ids whose length PostgreSQL's default
# (plan_cache_mode auto) treats as news: it planned them afresh on every call, which costs more than running them
# when batches are small. Generic plans suit these key lookups and multi-row writes. Only here, inside the transaction:
# the services' reads with optional filters (`$1 IS NULL OR …`) need a plan for their actual arguments.
GENERIC_PLANS = "SET LOCAL plan_cache_mode = force_generic_plan"


class UnitOfWork:
    """`async with UnitOfWork(pool) as uow: …; await uow.commit()` — rolls back unless committed.

    A consumer runs a whole batch of one partition in one unit of work: one commit for the batch.
    Should a handler fail, the batch is rolled back and handled again with each message inside its
    own savepoint, so that the message that fails takes only its own effects (rows, queued events,
    after-commit actions) with it.
    """

    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool
        self._committed = False
        self._outbox: list[tuple[str, str | None, str, str, bytes]] = []
        self._after_commit: list[Callable[[], None]] = []
        self._expected: list[str] = []               # event ids the handlers of this batch will claim, sorted
        self._expected_set: frozenset[str] = frozenset()
        self._fresh: dict[str, set[str]] = {}        # per consumer: those of them claimed now, not yet handed out
        self._on_end: list[Callable[[], None]] = []
        self.conn: asyncpg.Connection

    async def __aenter__(self) -> "UnitOfWork":
        self.conn = await self._pool.acquire()
        try:
            self._tx = self.conn.transaction()
            await self._tx.start()
            await self.conn.execute(GENERIC_PLANS)
        except BaseException:
            # Cancelled (or failed) before the body: __aexit__ will not run, so give the connection back here,
            # or the pool waits for it forever when it closes.
            await self._pool.release(self.conn)
            raise
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc is not None and is_transient(exc) and not self._committed:
                # The connection may be half-way through a statement the outage cut: never hand it out again (the
                # server rolls its transaction back; the pool connects anew).
                self.conn.terminate()
            else:
                if not self._committed and not self.conn.is_closed():
                    await self._tx.rollback()
                # Handlers use the connection inside the transaction only (SET LOCAL, transaction locks, no LISTEN):
                # nothing of theirs outlives it, so the pool may skip its reset query (shared/db.py: a round trip
                # and four statements a batch).
                if not self.conn.is_closed():
                    ended_clean(self.conn)
        finally:
            try:
                await self._pool.release(self.conn)
            finally:
                for action in self._on_end:
                    action()

    def after_end(self, action: Callable[[], None]) -> None:
        """Run this when the unit of work ends, committed or not."""
        self._on_end.append(action)

    def abort(self) -> None:
        """Cut this unit of work's connection: the server rolls its transaction back, and a statement waiting on it
        fails at once (the pool connects anew for the next user)."""
        self.conn.terminate()

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator["UnitOfWork"]:
        """A nested scope: on an exception, its writes, queued events and after-commit actions are undone."""
        outbox_mark, after_mark = len(self._outbox), len(self._after_commit)
        nested = self.conn.transaction()
        await nested.start()
        try:
            yield self
        except BaseException:
            del self._outbox[outbox_mark:]
            del self._after_commit[after_mark:]
            await nested.rollback()
            raise
        await nested.commit()

    def expect_claims(self, event_ids: list[str]) -> None:
        """The event ids this batch's handlers will claim: a consumer's first claim of one of them claims them all
        in one statement (sorted, so that two instances claiming overlapping batches cannot deadlock), instead of a
        round trip per message. Only for a batch without savepoints, which commits or rolls back whole: an id is
        then recorded as applied by that consumer even if its handler returned before claiming it, which means
        only that a replay skips a message that changed nothing."""
        self._expected_set = frozenset(event_ids)
        self._expected = sorted(self._expected_set)
        self._fresh.clear()

    async def claim(self, consumer: str, event_id: str) -> bool:
        """Record that `consumer` applies `event_id` now; False if it already did (skip the effect)."""
        if event_id in self._fresh.get(consumer, ()):
            self._fresh[consumer].discard(event_id)  # claimed by the batch's statement; handed out once
            return True
        if consumer not in self._fresh and event_id in self._expected_set:
            rows = await self.conn.fetch(
                """INSERT INTO processed_events(consumer, event_id) SELECT $1, unnest($2::text[])
                   ON CONFLICT DO NOTHING RETURNING event_id""", consumer, self._expected)
            claimed = {r["event_id"] for r in rows}
            self._fresh[consumer] = claimed - {event_id}
            return event_id in claimed
        if consumer in self._fresh and event_id in self._expected_set:
            return False  # claimed before this batch (a replay), or already handed out in it
        row = await self.conn.fetchval(
            "INSERT INTO processed_events(consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1",
            consumer,
            event_id,
        )
        return row is not None

    async def claim_all(self, consumer: str, event_ids: list[str]) -> set[str]:
        """Record that `consumer` applies these events now, in one statement; the ids not applied before (the
        rest are replays: skip their effects). Sorted, so two instances claiming overlapping batches cannot
        deadlock."""
        if not event_ids:
            return set()
        rows = await self.conn.fetch(
            """INSERT INTO processed_events(consumer, event_id) SELECT $1, unnest($2::text[])
               ON CONFLICT DO NOTHING RETURNING event_id""", consumer, sorted(set(event_ids)))
        return {r["event_id"] for r in rows}

    def emit(self, topic: str, envelope: Envelope, key: str | None = None) -> None:
        """Queue an event for the outbox; it is written at commit, in this transaction."""
        key = key if key is not None else envelope.case_id
        self._outbox.append((topic, key, envelope.id, envelope.type, envelope.to_json()))

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run this (a metric, a log line) only once the work is committed."""
        self._after_commit.append(action)

    async def commit(self) -> None:
        """Write queued events to the outbox and commit everything at once."""
        if self._outbox:
            # One statement for the batch's events, not executemany: asyncpg's executemany runs the INSERT once per
            # row on the server (one execution, and one firing of the statement trigger's NOTIFY, per event). WITH
            # ORDINALITY … ORDER BY: the seqs are drawn in the order the events were emitted (the relay's order).
            topics, keys, ids, types, payloads = zip(*self._outbox)
            await self.conn.execute(
                """INSERT INTO outbox(topic, key, event_id, event_type, payload)
                   SELECT topic, key, event_id, event_type, payload
                   FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[])
                        WITH ORDINALITY AS e(topic, key, event_id, event_type, payload, n)
                   ORDER BY n""",
                list(topics), list(keys), list(ids), list(types), list(payloads),
            )
            self._outbox.clear()
        await self._tx.commit()
        self._committed = True
        for action in self._after_commit:
            try:
                action()
            except Exception:  # noqa: BLE001 — the work is committed; a failing metric must not undo that
                log.exception("after-commit action failed")
        self._after_commit.clear()

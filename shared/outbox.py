"""The outbox relay: sends what the unit of work wrote, in order, then forgets it.

A row Kafka can never take (too big, a topic name it refuses, another permanent produce error) is
moved to `outbox_failed` with the reason and counted (wangge_outbox_set_aside_total); the rows after
it go on. An outage of Kafka or PostgreSQL retries, with backoff, from the first row not acknowledged.
"""
from __future__ import annotations

import asyncio
import logging

import asyncpg

from shared.errors import Backoff, describe, is_permanent_kafka_error, is_transient
from shared.kafka import OutgoingMessage, Producer
from shared.metrics import OUTBOX_BACKLOG, OUTBOX_RELAYED, OUTBOX_SET_ASIDE
from shared.topics import Topics, ensure_topics
from shared.watchdog import Heartbeat

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
        # Rows Kafka acknowledged whose delete waits for the next turn's read (one statement for both: _read). Only
        # while more rows are coming; a relay about to wait forgets what it sent at once.
        self._unforgotten: list[int] = []
        self.heartbeat = Heartbeat()  # every turn, waiting included: the watchdog restarts a relay that stops turning

    async def run(self) -> None:
        """Relay until cancelled; survives database and broker outages by retrying."""
        backoff = Backoff(base=1.0, cap=30.0)
        while True:
            self.heartbeat.beat()
            try:
                await self._lead(backoff)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — classified
                if not is_transient(exc):
                    raise  # a bug: the runtime logs it and restarts the relay
                log.warning("outbox relay of %s interrupted (%s); retrying", self._schema, describe(exc))
                await backoff.wait()

    async def _lead(self, backoff: Backoff) -> None:
        async with self._pool.acquire() as conn:
            # Session-level lock, held while this connection lives: the other instances wait.
            while not await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", f"outbox:{self._schema}"):
                self.heartbeat.beat()
                await asyncio.sleep(2)
            # The relay's own writes (forgetting rows sent, setting rows aside) need not wait for the WAL flush: lost
            # in a crash of PostgreSQL, the rows are there again and sent again, which consumers de-duplicate on the
            # event id (as any resend). It spared each turn a disk flush on the path report → task. The pool resets
            # the setting when the connection goes back (RESET ALL).
            await conn.execute("SET synchronous_commit = off")
            channel = f"{self._schema}_outbox"
            await conn.add_listener(channel, self._on_notify)
            try:
                while True:
                    self.heartbeat.beat()
                    # Cleared before the read, not after: a NOTIFY that comes while this batch is being sent is a
                    # commit the read did not see, and must wake the next turn at once. Cleared after, it was lost
                    # and those rows waited for the poll (up to outbox_poll_seconds: the p99 of a steady 200/s).
                    self._wake.clear()
                    sent = await self.relay_once(conn, defer_forget=True)
                    backoff.reset()
                    if sent < BATCH and not self._wake.is_set():
                        await self._forget_now(conn)  # nothing more to read yet: not left in the outbox meanwhile
                        try:
                            await asyncio.wait_for(self._wake.wait(), self._poll)
                        except asyncio.TimeoutError:
                            pass
            finally:
                # Deferred deletes not done are only a resend by the next leader (consumers de-duplicate on the id).
                self._unforgotten.clear()
                await conn.remove_listener(channel, self._on_notify)
                await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", f"outbox:{self._schema}")

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _forget_now(self, conn: asyncpg.Connection) -> None:
        if self._unforgotten:
            await conn.execute("DELETE FROM outbox WHERE seq = ANY($1::bigint[])", self._unforgotten)
            self._unforgotten = []

    async def _read(self, conn: asyncpg.Connection) -> list[asyncpg.Record]:
        """The oldest rows not yet sent, and the delete of those sent last turn in the same statement: under a stream
        a turn is one statement (one transaction) instead of two. The delete and the read share one snapshot, so the
        read leaves out the rows being deleted itself."""
        if not self._unforgotten:
            return await conn.fetch("SELECT seq, topic, key, event_type, payload FROM outbox ORDER BY seq LIMIT $1",
                                    BATCH)
        rows = await conn.fetch(
            """WITH sent AS (DELETE FROM outbox WHERE seq = ANY($2::bigint[]))
               SELECT seq, topic, key, event_type, payload FROM outbox WHERE seq <> ALL($2::bigint[])
               ORDER BY seq LIMIT $1""", BATCH, self._unforgotten)
        self._unforgotten = []
        return rows

    async def relay_once(self, conn: asyncpg.Connection, *, defer_forget: bool = False) -> int:
        """Send the oldest batch of outbox rows; forget those Kafka acknowledged, set aside those it never will.

        Returns the rows dealt with. On an outage (a transient error on some row) the acknowledged rows
        before it are forgotten and the error is raised: the rest is sent again, in order, on the retry.
        With `defer_forget`, rows all sent are forgotten by the next turn's read (or by _forget_now) instead of a
        statement of their own.
        """
        rows = await self._read(conn)
        if not rows:
            return 0
        messages = [OutgoingMessage(r["topic"], r["key"], bytes(r["payload"]), r["event_type"]) for r in rows]
        await self._ensure_topics({m.topic for m in messages if self._producer.refusal(m) is None})
        outcomes = await self._producer.send_each(messages)
        done: list[int] = []
        set_aside: list[tuple[int, str]] = []
        outage: BaseException | None = None
        for row, outcome in zip(rows, outcomes):
            if outcome is None:
                if outage is None:
                    done.append(row["seq"])
                # after an outage: sent again on the retry (consumers de-duplicate on the event id)
            elif is_permanent_kafka_error(outcome) or not is_transient(outcome):
                set_aside.append((row["seq"], describe(outcome, 1000)))
            elif outage is None:
                outage = outcome
        # A crash between the send and this delete sends them again: consumers de-duplicate on id.
        forget = "DELETE FROM outbox WHERE seq = ANY($1::bigint[])"
        if set_aside:
            async with conn.transaction():
                await conn.executemany(
                    """INSERT INTO outbox_failed (seq, topic, key, event_id, event_type, payload, created_at, reason)
                       SELECT seq, topic, key, event_id, event_type, payload, created_at, $2 FROM outbox WHERE seq = $1
                       ON CONFLICT (seq) DO NOTHING""",
                    set_aside,
                )
                await conn.execute(forget, done + [seq for seq, _ in set_aside])
        elif done and defer_forget and outage is None:
            self._unforgotten = done
        elif done:
            await conn.execute(forget, done)  # one statement, its own transaction: one round trip, not three
        if done:
            OUTBOX_RELAYED.labels(self._service).inc(len(done))
        for seq, reason in set_aside:
            row = next(r for r in rows if r["seq"] == seq)
            OUTBOX_SET_ASIDE.labels(self._service, _reason_kind(reason)).inc()
            log.error("outbox %s row %d (%s to %s) set aside in outbox_failed: %s",
                      self._schema, seq, row["event_type"], row["topic"][:100], reason)
        if outage is not None:
            raise outage
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
            except Exception as exc:  # noqa: BLE001 — classified
                if not is_transient(exc):
                    raise
                log.warning("cannot measure the outbox backlog of %s: %s", self._schema, describe(exc))
            await asyncio.sleep(every_seconds)


def _reason_kind(reason: str) -> str:
    """A small label for the metric: too-big, invalid-topic or refused."""
    if reason.startswith(("MessageSizeTooLarge", "RecordTooLarge", "RecordListTooLarge")):
        return "too-big"
    if reason.startswith("InvalidTopic"):
        return "invalid-topic"
    return "refused"

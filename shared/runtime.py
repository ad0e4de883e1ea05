"""What every service runs on: its pool and migrations, producer, outbox relay, consumers, workers."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Awaitable, Callable

import asyncpg
from fastapi import FastAPI

from shared import kafka_security
from shared.auth import CREDENTIAL_TYPES, apply_credential_event
from shared.claims import pruning_loop
from shared.consumer import EventConsumer, Handler
from shared.messagebus import MessageBus
from shared.db import PLUMBING_SQL, create_pool, migrate
from shared.errors import Backoff, describe, is_transient
from shared.kafka import Producer, broker_answers
from shared.outbox import OutboxRelay
from shared.settings import Settings
from shared.signing import signer_for, verifier_for
from shared.topics import Topics
from shared.trim import Trimmer
from shared.uow import UnitOfWork
from shared.watchdog import Heartbeat, Watchdog

log = logging.getLogger(__name__)

Worker = Callable[[], Awaitable[None]]


@dataclass
class _ConsumerSpec:
    topics: list[str]
    handler: Handler | MessageBus
    group_suffix: str
    types: frozenset[str] | None


async def infrastructure_answers(database_url: str, bootstrap: str) -> bool:
    """Whether PostgreSQL and Kafka both answer a new connection now (the watchdog acts only then). New
    connections, not the pool's or the producer's: those may be what is stuck."""
    try:
        conn = await asyncpg.connect(database_url, timeout=5)
        try:
            await conn.fetchval("SELECT 1", timeout=5)
        finally:
            await conn.close(timeout=5)
        await broker_answers(bootstrap, timeout=5)
    except Exception:  # noqa: BLE001 — either does not answer: an outage, which is waited out
        return False
    return True


def process_watchdog(name: str, settings: Settings, database_url: str) -> Watchdog:
    """The watchdog of one process's loops, acting on the settings' limit while PostgreSQL and Kafka answer."""
    limit = settings.watchdog_limit()
    return Watchdog(name, stall_seconds=limit,
                    infrastructure_ok=lambda: infrastructure_answers(database_url, settings.kafka_bootstrap),
                    interval=min(settings.consumer_lag_interval_seconds, limit / 4))


async def infrastructure_checks(pool: asyncpg.Pool, producer: Producer) -> dict[str, str]:
    """{'postgres': 'ok' | reason, 'kafka': 'ok' | reason}: whether each answers now (within 3 s)."""
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(pool.fetchval("SELECT 1"), 3)
        checks["postgres"] = "ok"
    except Exception as exc:  # noqa: BLE001 — reported, not raised
        checks["postgres"] = f"unreachable: {exc}"
    try:
        await asyncio.wait_for(producer.ping(), 3)
        checks["kafka"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["kafka"] = f"unreachable: {exc}"
    return checks


async def connect_when_answering(name: str, settings: Settings, connect: Worker, close: Worker) -> None:
    """`connect()` (to PostgreSQL and Kafka), retried from a clean state (`close()`) while either is away, for at
    most startup_wait_seconds; then the last error is raised and the process exits for its supervisor."""
    deadline = time.monotonic() + settings.startup_wait_seconds
    backoff = Backoff(settings.retry_backoff_seconds, min(settings.retry_backoff_cap_seconds, 5.0))
    while True:
        try:
            await connect()
            return
        except Exception as exc:  # noqa: BLE001 — classified
            await close()
            if not is_transient(exc) or time.monotonic() >= deadline:
                raise
            log.warning("%s: starting while PostgreSQL or Kafka does not answer (%s); trying again, for at most "
                        "%.0f s more", name, describe(exc, 200), deadline - time.monotonic())
            await asyncio.sleep(min(backoff.next_delay(), max(0.0, deadline - time.monotonic())))


async def close_opened(holder: object) -> None:
    """The producer and pool a failed start opened on `holder`, closed and forgotten (bounded: the other end may be
    the one away)."""
    producer, pool = holder.__dict__.pop("producer", None), holder.__dict__.pop("pool", None)
    if producer is not None:
        try:
            await asyncio.wait_for(producer.stop(), 5)
        except Exception:  # noqa: BLE001 — a producer that never connected has nothing to flush
            pass
    if pool is not None:
        pool.terminate()


class ServiceRuntime:
    """Owns a service's connections and background loops; started and stopped as one."""

    def __init__(self, name: str, settings: Settings, migrations: Path):
        self.name = name
        self.settings = settings
        self.schema = settings.schema(name)
        self.topics = Topics(settings.topic_prefix)
        self._migrations = migrations
        self._consumer_specs: list[_ConsumerSpec] = []
        self._workers: list[tuple[str, Worker, Heartbeat | None]] = []
        self._before_consuming: list[Worker] = []
        self.watchdog: Watchdog | None = None
        # Who may have published what this service reads (shared/signing.py): checked on every record consumed.
        self.verifier = verifier_for(settings)
        self.consumers: list[EventConsumer] = []
        self.pool: asyncpg.Pool
        self.producer: Producer

    def consume(self, topics: list[str], handler: Handler | MessageBus, group_suffix: str = "",
                types: set[str] | None = None) -> None:
        """Register a consumer group member for these topics (started with the runtime); with `types` (a bus
        knows its own), only envelopes of those types reach the handler (the rest are skipped cheaply)."""
        self._consumer_specs.append(_ConsumerSpec(topics, handler, group_suffix, frozenset(types) if types else None))

    def worker(self, name: str, loop: Worker, heartbeat: Heartbeat | None = None) -> None:
        """Register a background loop (a deadline poller, a delivery worker…); one that beats a heartbeat every
        turn is restarted by the watchdog when it stops turning while Kafka and PostgreSQL answer."""
        self._workers.append((name, loop, heartbeat))

    def trim_taken(self, topic: str, group_suffix: str = "") -> Trimmer:
        """Cut `topic` below what this service's consumer group (`group_suffix`, as given to `consume`) has committed,
        every trim_interval_seconds (shared/trim.py): for a topic carrying personal data that this service alone
        reads. Every instance trims; a cut repeated is harmless."""
        trimmer = Trimmer(service=self.name, bootstrap=self.settings.kafka_bootstrap, topic=topic,
                          groups=[self.group_id(group_suffix)], interval=self.settings.trim_interval_seconds)
        self.worker(f"trim {topic}", trimmer.run)
        return trimmer

    def before_consuming(self, step: Worker) -> None:
        """Register a start-up step that runs after migrations and before any consumer or worker."""
        self._before_consuming.append(step)

    def uow(self) -> UnitOfWork:
        """A new unit of work on this service's schema."""
        return UnitOfWork(self.pool)

    def group_id(self, suffix: str = "") -> str:
        """The consumer group of this service (prefixed like the topics)."""
        return f"{self.settings.topic_prefix}wangge-{self.name}{suffix}"

    async def start(self) -> None:
        """Connect, migrate, and start the relay, the consumers and the workers."""
        kafka_security.use(self.settings)
        await connect_when_answering(self.name, self.settings, self._connect, lambda: close_opened(self))
        self.watchdog = watchdog = process_watchdog(self.name, self.settings, self.settings.service_database_url(self.name))
        relay = OutboxRelay(self.pool, self.schema, self.producer, self.name, self.settings.outbox_poll_seconds,
                            self.topics, self.settings.kafka_bootstrap)
        watchdog.loop("outbox-relay", relay.run, relay.heartbeat)
        watchdog.loop("outbox-backlog", relay.measure_backlog)
        watchdog.probe("kafka-producer", self.producer.ping, self.producer.renew)
        # Every service learns the credential registry (shared/auth.py) into its own table.
        specs = [*self._consumer_specs,
                 _ConsumerSpec([self.topics.credentials], apply_credential_event, "-credentials", CREDENTIAL_TYPES)]
        for spec in specs:
            consumer = EventConsumer(
                service=self.name,
                group_id=self.group_id(spec.group_suffix),
                topics=spec.topics,
                bootstrap=self.settings.kafka_bootstrap,
                handler=spec.handler,
                types=spec.types,
                pool=self.pool,
                producer=self.producer,
                topic_names=self.topics,
                retry_backoff=self.settings.retry_backoff_seconds,
                retry_backoff_cap=self.settings.retry_backoff_cap_seconds,
                max_message_bytes=self.settings.max_message_bytes,
                max_fetch_bytes=self.settings.kafka_max_request_bytes,
                lag_interval=self.settings.consumer_lag_interval_seconds,
                verify=self.verifier.check,
            )
            self.consumers.append(consumer)
            watchdog.consumer(f"consumer {','.join(spec.topics)}", consumer)
        settings = self.settings
        watchdog.loop("claims-pruning", pruning_loop(
            self.name, lambda: self.pool, self.consumers, every=settings.claims_prune_seconds,
            keep=timedelta(hours=settings.claims_keep_hours), batch=settings.claims_prune_batch,
            max_behind=settings.claims_prune_max_behind))
        for name, loop, heartbeat in self._workers:
            watchdog.loop(name, loop, heartbeat)
        watchdog.start()

    async def _connect(self) -> None:
        self.pool = await create_pool(self.settings.service_database_url(self.name), self.schema)
        async with self.pool.acquire() as conn:
            applied = await migrate(conn, self.schema, [PLUMBING_SQL, self._migrations])
        if applied:
            log.info("schema %s: applied %s", self.schema, ", ".join(applied))
        for step in self._before_consuming:
            await step()
        self.producer = Producer(self.settings.kafka_bootstrap, self.name,
                                 max_request_size=self.settings.kafka_max_request_bytes,
                                 signer=signer_for(self.settings, self.name))
        await self.producer.start()

    async def wait_until_consuming(self, timeout: float = 30) -> None:
        """Wait until every consumer has its partitions (useful before publishing in tests)."""
        await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in self.consumers)), timeout)

    async def check_ready(self) -> dict[str, str]:
        """Whether PostgreSQL and Kafka answer now and no consumer is stalled: {'postgres': 'ok'|reason,
        'kafka': …, 'consumers': 'ok' | 'stalled <topic>[p] lag N for S s; …'}."""
        checks = await infrastructure_checks(self.pool, self.producer)
        checks["consumers"] = self.stalled_consumers()
        return checks

    def stalled_consumers(self) -> str:
        """'ok', or every partition with lag that made no progress for longer than consumer_stall_seconds."""
        stalled = [
            f"stalled {tp.topic}[{tp.partition}] lag {lag} for {idle:.0f} s"
            for consumer in self.consumers
            for tp, lag, idle in consumer.stalled(self.settings.consumer_stall_seconds)
        ]
        return "; ".join(stalled) if stalled else "ok"

    def problem(self) -> str | None:
        """None while the process can go on by itself; else why it needs a restart (/healthz fails with it)."""
        return self.watchdog.problem() if self.watchdog is not None else None

    async def stop(self) -> None:
        """Cancel the loops and close the connections, within a bound (STOP_SECONDS at most, whatever hangs)."""
        if self.watchdog is not None:
            # A loop still waiting after its cancellation (a statement on a connection being reset) has its
            # transaction's connection cut; one that still does not end is abandoned, never waited for.
            stuck = await self.watchdog.stop(timeout=5)
            if stuck:
                log.warning("%s: %s did not stop in time; abandoned", self.name, ", ".join(stuck))
                self.pool.terminate()
            self.watchdog = None
        self.consumers.clear()
        try:
            await asyncio.wait_for(self.producer.stop(), 5)
        except Exception as exc:  # noqa: BLE001 — what it had not sent is still in the outbox
            log.warning("%s: the Kafka producer did not stop cleanly (%s)", self.name, exc)
        try:
            await asyncio.wait_for(self.pool.close(), 5)
        except asyncio.TimeoutError:
            log.warning("%s: the database pool did not close in 5 s; terminated", self.name)
            self.pool.terminate()


@dataclass
class Service:
    """A built service: its runtime (connections, loops) and its HTTP app."""

    runtime: ServiceRuntime
    app: FastAPI

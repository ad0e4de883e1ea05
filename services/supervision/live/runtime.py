"""What the live process runs on: the faust app, and the credential registry it checks callers against.

The live process is part of supervision: it keeps the registry (wangge.credentials) in supervision's
schema, in the same `credentials` table supervision keeps, with a consumer group of its own, so it checks
tokens (and their revocation) even while the supervision service itself is down. Applying a credential
event twice is harmless (the newer event wins), so both writers may run at once.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from shared import kafka_security
from shared.auth import CREDENTIAL_TYPES, apply_credential_event
from shared.consumer import EventConsumer
from shared.db import PLUMBING_SQL, create_pool, migrate
from shared.kafka import Producer
from shared.signing import signer_for, verifier_for
from shared.tasks import cancel_until_done
from shared.lag import topic_lag
from shared.runtime import close_opened, connect_when_answering, infrastructure_checks, process_watchdog
from shared.watchdog import Watchdog
from shared.settings import Settings
from shared.topics import Topics
from services.supervision.live.streams import LiveStreams

log = logging.getLogger(__name__)

NAME = "supervision-live"
# An event in the agent's hands longer than this counts as a stall from then on (the watchdog gives it its
# limit (Settings.watchdog_limit) more before asking for a restart): following one case event is a few table writes.
HANDLING_SECONDS = 1.0


class LiveRuntime:
    """The live process's connections and loops, started and stopped as one (shaped like ServiceRuntime)."""

    def __init__(self, settings: Settings, streams: LiveStreams):
        self.name = NAME
        self.settings = settings
        self.schema = settings.schema("supervision")
        self.topics = Topics(settings.topic_prefix)
        self.streams = streams
        self.consumers: list[EventConsumer] = []
        self.watchdog: Watchdog | None = None
        self.pool: asyncpg.Pool
        self.producer: Producer
        self._read_at_last_look = 0
        self._recovered_at_last_look = -1
        self._streams_start: asyncio.Task[None] | None = None
        self._start_failed: str | None = None

    async def start(self) -> None:
        """Connect to supervision's schema (its plumbing tables), follow the registry, start the faust app."""
        kafka_security.use(self.settings)
        await connect_when_answering(NAME, self.settings, self._connect, lambda: close_opened(self))
        credentials = EventConsumer(
            service=NAME, group_id=f"{self.settings.topic_prefix}wangge-{NAME}-credentials",
            topics=[self.topics.credentials], bootstrap=self.settings.kafka_bootstrap, handler=apply_credential_event,
            types=CREDENTIAL_TYPES, pool=self.pool, producer=self.producer, topic_names=self.topics,
            retry_backoff=self.settings.retry_backoff_seconds, retry_backoff_cap=self.settings.retry_backoff_cap_seconds,
            max_message_bytes=self.settings.max_message_bytes, max_fetch_bytes=self.settings.kafka_max_request_bytes,
            lag_interval=self.settings.consumer_lag_interval_seconds,
            verify=verifier_for(self.settings).check,
        )
        self.consumers.append(credentials)
        # The registry consumer under the same watchdog as the services' (restarted if it dies, rebuilt if it stalls).
        self.watchdog = process_watchdog(NAME, self.settings, self.settings.service_database_url("supervision"))
        self.watchdog.consumer("credentials", credentials)
        # faust's consumer is not ours to ask: its group's committed offsets are read from outside. A faust app that
        # stopped cannot be started again in the same process, so a stalled one asks for the process's restart.
        self.watchdog.probe("faust app following wangge.cases", self._follows_cases, repair=None)
        self.watchdog.start()
        # In the background: faust's start returns only once its tables are recovered from their changelogs, which
        # takes minutes for a large street. Meanwhile /healthz answers (the process is alive and working) and /readyz
        # says it is recovering; a supervisor waiting for /healthz must not kill it half-way and start it over.
        self._streams_start = asyncio.create_task(self._start_streams(), name=f"{NAME}:faust start")

    async def _start_streams(self) -> None:
        try:
            await self.streams.start()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 — said by problem(): /healthz fails and the process is restarted
            log.exception("%s: the faust app could not start", NAME)
            self._start_failed = f"the faust app could not start: {exc!r}"

    async def _connect(self) -> None:
        self.pool = await create_pool(self.settings.service_database_url("supervision"), self.schema, max_size=4)
        async with self.pool.acquire() as conn:
            # Only the shared plumbing (the credentials table): supervision's own migrations are supervision's.
            await migrate(conn, self.schema, [PLUMBING_SQL])
        # Its rejections are signed as supervision, whose process it is (shared/signing.py).
        self.producer = Producer(self.settings.kafka_bootstrap, NAME,
                                 max_request_size=self.settings.kafka_max_request_bytes,
                                 signer=signer_for(self.settings, "supervision"))
        await self.producer.start()

    async def _follows_cases(self) -> None:
        """Fails while the agent holds one event, or while case events wait in the live group's partitions and the app
        read none since the last look (faust's fetcher stopped: nothing reaches the agent)."""
        recovery: Any = self.streams.app.tables.recovery
        if not recovery.completed.is_set():
            # Recovering its tables from the changelogs is progress of its own (/readyz says so) — as long as the
            # changelogs are being read: faust's fetcher wedged by a broker restart halfway through recovery reads
            # nothing more, and the process would say "recovering" for ever.
            # Only while records are known to wait: before its partitions are assigned there is nothing to read yet.
            left = sum(max(0, n) for n in recovery.active_remaining().values())
            read = sum(recovery.active_offsets.values())
            read_before, self._recovered_at_last_look = self._recovered_at_last_look, read
            if left and read == read_before:
                raise RuntimeError(f"recovering the tables read none of the {left} changelog records left since the "
                                   "last look")
            return
        if self.streams.in_hand_for() > HANDLING_SECONDS:
            raise RuntimeError(f"the agent has held one event of {self.topics.cases} for "
                               f"{self.streams.in_hand_for():.0f} s")
        read, self._read_at_last_look = self._read_at_last_look, self.streams.events_read
        if self.streams.events_read != read:
            return  # it reads: no need to ask the broker
        lag = await topic_lag(self.settings.kafka_bootstrap, self.streams.app_id, self.topics.cases, timeout=4)
        if lag and self.streams.events_read == read:
            raise RuntimeError(f"{lag} events of {self.topics.cases} wait and none was read since the last look")

    def problem(self) -> str | None:
        """None while the process can go on by itself; else why it needs a restart (/healthz fails with it)."""
        if self.watchdog is not None and self.watchdog.problem():
            return self.watchdog.problem()
        if self.streams.app.crashed:
            return "the faust app crashed"
        return self._start_failed

    async def wait_until_consuming(self, timeout: float = 60) -> None:
        """Wait until the registry consumer has its partition and the faust app has started, its tables recovered
        from their changelogs (RuntimeError if it could not start)."""
        assert self._streams_start is not None, "start() first"
        await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in self.consumers),
                                              asyncio.shield(self._streams_start)), timeout)
        if self._start_failed:
            raise RuntimeError(self._start_failed)
        recovery: Any = self.streams.app.tables.recovery
        await asyncio.wait_for(recovery.completed.wait(), timeout)

    async def check_ready(self) -> dict[str, str]:
        """PostgreSQL and Kafka answer, the faust app runs and has recovered its tables."""
        checks = await infrastructure_checks(self.pool, self.producer)
        recovery: Any = self.streams.app.tables.recovery
        if not self.streams.running:
            checks["streams"] = "the faust app is not running"
        elif not recovery.completed.is_set():
            checks["streams"] = "recovering the tables from their changelog topics"
        else:
            checks["streams"] = "ok"
        return checks

    async def stop(self) -> None:
        """Stop the faust app (it commits what it processed), the registry consumer and the connections."""
        if self._streams_start is not None and not self._streams_start.done():
            if await cancel_until_done({self._streams_start}, 10):
                log.warning("%s: the faust app's start did not end in 10 s; abandoned", NAME)
        try:
            await asyncio.wait_for(self.streams.stop(), 30)
        except asyncio.TimeoutError:
            log.warning("%s: the faust app did not stop in 30 s", NAME)
        if self.watchdog is not None:
            await self.watchdog.stop(timeout=5)
            self.watchdog = None
        self.consumers.clear()
        try:
            await asyncio.wait_for(self.producer.stop(), 5)
        except Exception as exc:  # noqa: BLE001 — nothing of the live process waits in it
            log.warning("%s: the Kafka producer did not stop cleanly (%s)", NAME, exc)
        try:
            await asyncio.wait_for(self.pool.close(), 10)
        except asyncio.TimeoutError:
            self.pool.terminate()

"""Consuming from Kafka: offsets are committed only after the effect is durable in PostgreSQL.

Per partition, messages are handled one after another (order per case); partitions of a
batch are handled concurrently. A message that cannot be accepted goes to the rejected topic
with its reason and the consumer goes on; an outage of PostgreSQL or Kafka pauses it, retrying.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import OffsetAndMetadata

from shared.contracts.envelope import Envelope, InvalidMessage
from shared.contracts.rejected import MessageRejected
from shared.db import TRANSIENT_DB_ERRORS
from shared.kafka import TRANSIENT_KAFKA_ERRORS, OutgoingMessage, Producer
from shared.metrics import CONSUMER_LAG, HANDLER_RETRIES, HANDLER_SECONDS, MESSAGES_CONSUMED, MESSAGES_REJECTED
from shared.topics import Topics
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

Handler = Callable[[Envelope, UnitOfWork], Awaitable[None]]
TRANSIENT = (*TRANSIENT_DB_ERRORS, *TRANSIENT_KAFKA_ERRORS)
# A handler that fails this often on the same message for a non-transient reason has a bug or
# meets data it cannot take: the message is set aside on the rejected topic, not retried forever.
MAX_ATTEMPTS = 3


class EventConsumer:
    """Runs one consumer group member over some topics, calling a handler per envelope."""

    def __init__(
        self,
        *,
        service: str,
        group_id: str,
        topics: list[str],
        bootstrap: str,
        handler: Handler,
        types: frozenset[str] | None = None,
        pool: asyncpg.Pool,
        producer: Producer,
        topic_names: Topics,
        retry_backoff: float = 1.0,
    ):
        self.service = service
        self.group_id = group_id
        self.topics = topics
        self._bootstrap = bootstrap
        self._handler = handler
        self._types = types
        self._pool = pool
        self._producer = producer
        self._names = topic_names
        self._backoff = retry_backoff
        self._consumer: AIOKafkaConsumer | None = None
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Consume until cancelled."""
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=self.group_id,
            client_id=f"wangge-{self.service}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=500,
        )
        # Ready once the group has given this member its share, which may be none (a second
        # instance on a one-partition topic): the listener is told of every assignment, empty or not.
        self._consumer.subscribe(self.topics, listener=_ReadyOnAssignment(self.ready))
        await self._consumer.start()
        try:
            while True:
                batch = await self._consumer.getmany(timeout_ms=500)
                if not batch:
                    continue
                await asyncio.gather(*(self._handle_partition(records) for records in batch.values()))
                offsets = {tp: OffsetAndMetadata(records[-1].offset + 1, "") for tp, records in batch.items()}
                await self._commit(offsets)
                self._record_lag(offsets)
        finally:
            await self._consumer.stop()

    async def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        assert self._consumer is not None
        while True:
            try:
                await self._consumer.commit(offsets)
                return
            except (CommitFailedError, IllegalStateError) as exc:
                # The group rebalanced under us: these partitions are another member's now. It
                # re-reads from the last commit, and the processed-event record makes that harmless.
                log.info("offsets not committed after a rebalance (%s); the new owner replays them", exc)
                return
            except TRANSIENT_KAFKA_ERRORS as exc:
                # Not committing only means a harmless replay later; still, try to record progress.
                log.warning("offset commit failed (%s); retrying", exc)
                await asyncio.sleep(self._backoff)

    def _record_lag(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """Lag = the partition's high-water mark minus the next offset we will handle."""
        assert self._consumer is not None
        for tp, committed in offsets.items():
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                lag = max(0, highwater - committed.offset)
                CONSUMER_LAG.labels(self.service, self.group_id, tp.topic, str(tp.partition)).set(lag)

    async def _handle_partition(self, records: list[ConsumerRecord]) -> None:
        """One unit of work for the partition's batch, one savepoint per message, one commit."""
        while True:
            rejections: list[_Rejection] = []
            try:
                async with UnitOfWork(self._pool) as uow:
                    for record in records:
                        rejection = await self._handle_record(record, uow)
                        if rejection is not None:
                            rejections.append(rejection)
                    await uow.commit()
                break
            except asyncio.CancelledError:
                raise
            except TRANSIENT as exc:
                # Nothing of the batch was committed: all of it is tried again once the database answers.
                HANDLER_RETRIES.labels(self.service, "batch").inc()
                log.warning("%s: infrastructure unavailable (%s); retrying the batch of %d",
                            records[0].topic, exc, len(records))
                await asyncio.sleep(self._backoff)
        # After the commit, before the offsets: a crash in between replays the batch, which the
        # processed-event record makes harmless (the rejected topic may then see a message twice).
        for rejection in rejections:
            await self._reject(*rejection)

    async def _handle_record(self, record: ConsumerRecord, uow: UnitOfWork) -> "_Rejection | None":
        try:
            envelope = Envelope.from_json(record.value)
        except InvalidMessage as exc:
            return (record, exc.reason, exc.errors, "invalid-envelope")
        if self._types is not None and envelope.type not in self._types:
            # Another service's business: skipped without a savepoint or a round trip.
            uow.after_commit(lambda: MESSAGES_CONSUMED.labels(self.service, record.topic, "ignored").inc())
            return None
        for attempt in range(1, MAX_ATTEMPTS + 1):
            started = time.perf_counter()
            try:
                async with uow.savepoint():
                    await self._handler(envelope, uow)
            except InvalidMessage as exc:
                return (record, exc.reason, exc.errors, "invalid-content")
            except (asyncio.CancelledError, *TRANSIENT):
                raise
            except Exception as exc:  # noqa: BLE001 — a bug must not stop the whole stream
                HANDLER_RETRIES.labels(self.service, envelope.type).inc()
                log.exception("%s %s failed (attempt %d)", envelope.type, envelope.id, attempt)
                if attempt == MAX_ATTEMPTS:
                    return (record, f"handler failed: {type(exc).__name__}: {exc}", [], "handler-error")
                # A conflict with another instance's transaction is settled by the time we retry.
                await asyncio.sleep(0.05 * attempt)
                continue
            HANDLER_SECONDS.labels(self.service, envelope.type).observe(time.perf_counter() - started)
            uow.after_commit(lambda t=envelope.type: MESSAGES_CONSUMED.labels(self.service, record.topic, t).inc())
            return None
        return None

    async def _reject(self, record: ConsumerRecord, reason: str, errors: list[dict[str, Any]], kind: str) -> None:
        """Put the message, as received, on the rejected topic with the reason; wait for Kafka's ack."""
        key = record.key.decode("utf-8", "replace") if record.key is not None else None
        event = MessageRejected(
            reason=reason,
            errors=errors,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=key,
            original=_as_received(record.value),
            rejected_by=self.service,
        )
        envelope = event.envelope(source=self.service)
        target = self._names.rejected_for(record.topic)
        log.info("rejected %s[%d]@%d to %s: %s", record.topic, record.partition, record.offset, target, reason)
        while True:
            try:
                await self._producer.send(OutgoingMessage(target, key, envelope.to_json(), envelope.type))
                break
            except TRANSIENT_KAFKA_ERRORS as exc:
                log.warning("could not publish to %s (%s); retrying", target, exc)
                await asyncio.sleep(self._backoff)
        MESSAGES_REJECTED.labels(self.service, record.topic, kind).inc()
        MESSAGES_CONSUMED.labels(self.service, record.topic, "rejected").inc()


_Rejection = tuple[ConsumerRecord, str, list[dict[str, Any]], str]


class _ReadyOnAssignment(ConsumerRebalanceListener):
    """Sets the consumer's ready event when the group assigns it partitions (or none)."""

    def __init__(self, ready: asyncio.Event):
        self._ready = ready

    async def on_partitions_revoked(self, revoked: Any) -> None:
        """Nothing to do: offsets are committed after each batch."""

    async def on_partitions_assigned(self, assigned: Any) -> None:
        """This member has joined the group."""
        self._ready.set()


def _as_received(value: bytes | None) -> Any:
    """The original message: parsed JSON if it is JSON, else its text."""
    if value is None:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value.decode("utf-8", "replace")

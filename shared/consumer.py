"""Consuming from Kafka: offsets are committed only after the effect is durable in PostgreSQL.

Per partition, messages are handled one after another (order per case); partitions of a
batch are handled concurrently. No message can stop the stream: whatever cannot be accepted —
too big, not UTF-8, not JSON, not an envelope, an event type nobody knows, data that does not fit
its type, a handler that fails every attempt — goes to `<topic>.rejected` with the reason (the
rejection cut to a size Kafka takes) and the consumer goes on. An outage of PostgreSQL or Kafka
(shared/errors.py decides which failures are one) pauses it, retrying with backoff; a valid event
is never set aside because the database went away.

Offsets are committed at most every DEFAULT_COMMIT_INTERVAL seconds (and when partitions are given away or the
consumer stops), always after the PostgreSQL commit of what they cover.

Lag is measured against the broker's end offsets, refreshed in the background even while no
message arrives (or while a handler hangs), so a stalled partition shows: see `stalled()`.
"""
from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import OffsetAndMetadata

from shared import kafka_security
from shared.contracts.envelope import Envelope, InvalidMessage
from shared.contracts.registry import parse_event, registered_types
from shared.contracts.rejected import MessageRejected
from shared.errors import Backoff, describe, is_permanent_kafka_error, is_transient
from shared.kafka import (
    DEFAULT_MAX_REQUEST_BYTES, FETCH_MIN_BYTES, OutgoingMessage, Producer, fetch_max_wait_ms, park_only_whole_fetches,
    topic_name_problem,
)
from shared.messagebus import Message, MessageBus
from shared.metrics import (
    CONSUMER_LAG, CONSUMER_STALLED_SECONDS, HANDLER_RETRIES, HANDLER_SECONDS, MESSAGES_CONSUMED, MESSAGES_REJECTED,
    REJECTIONS_DEGRADED,
)
from shared.tasks import cancel_until_done, finish
from shared.topics import Topics, ensure_topics
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

Handler = Callable[[Envelope, UnitOfWork], Awaitable[None]]
# Checks who published a record (its headers and value: shared/signing.py): why it may not be handled, or None.
Verify = Callable[[ConsumerRecord, Envelope], "str | None"]
# The Kafka record being handled, for the few handlers that need more than its envelope (headers).
_current_record: contextvars.ContextVar[ConsumerRecord | None] = contextvars.ContextVar("current_record", default=None)


def current_record() -> ConsumerRecord | None:
    """The record whose envelope the calling handler is handling (None outside a consumer)."""
    return _current_record.get()


# A handler that fails this often on the same message for a non-transient reason has a bug or
# meets data it cannot take: the message is set aside on the rejected topic, not retried forever.
MAX_ATTEMPTS = 3
# The most records a consumer takes at once, handled in one transaction: a case's own is shared by at most this many.
MAX_POLL_RECORDS = 500
# Offsets are committed to Kafka at most this often, not after every batch: under a steady stream a batch is a
# message or two, and each commit is a request to the broker. A crash replays what was handled since, which the
# processed-event record makes harmless (as any replay).
DEFAULT_COMMIT_INTERVAL = 1.0
# How long one call to the broker may take (joining the group, a commit, leaving): beyond, it is retried from a
# clean state (a new member) rather than waited for.
KAFKA_CALL_TIMEOUT = 30.0
# How long a member being stopped may take to commit what it handled and leave its group. Shorter than a broker
# call may take: a member torn down by the watchdog because its Kafka client wedged must end within the
# watchdog's teardown time (shared/watchdog.py), not wait out the wedge; the group expires it instead.
STOP_SECONDS = 10.0
# No contract message comes near this: a report is a few KB. Larger ones are rejected unread.
DEFAULT_MAX_MESSAGE_BYTES = 512 * 1024


@dataclass
class _Partition:
    """What this member knows of one assigned partition."""

    next_offset: int | None = None   # the next offset to handle (committed, or read from the group)
    committed_offset: int | None = None  # the group's commit as this member last saw it (None: not known)
    end_offset: int | None = None    # the broker's end offset at the last refresh
    progress_at: float = field(default_factory=time.monotonic)  # last progress, or last time caught up

    @property
    def lag(self) -> int | None:
        if self.next_offset is None or self.end_offset is None:
            return None
        return max(0, self.end_offset - self.next_offset)


class EventConsumer:
    """Runs one consumer group member over some topics, handing a partition's batch to a message bus (or, for
    the handlers not yet on a bus, calling a handler per envelope)."""

    def __init__(
        self,
        *,
        service: str,
        group_id: str,
        topics: list[str],
        bootstrap: str,
        handler: Handler | MessageBus,
        types: frozenset[str] | None = None,
        pool: asyncpg.Pool,
        producer: Producer,
        topic_names: Topics,
        retry_backoff: float = 1.0,
        retry_backoff_cap: float = 30.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_fetch_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        lag_interval: float = 5.0,
        commit_interval: float = DEFAULT_COMMIT_INTERVAL,
        verify: Verify | None = None,
    ):
        self.service = service
        self.group_id = group_id
        self.topics = topics
        self._bootstrap = bootstrap
        self._handler = handler
        self._bus = handler if isinstance(handler, MessageBus) else None
        self._types = types if types is not None or self._bus is None else self._bus.types
        self._verify = verify
        self._pool = pool
        self._producer = producer
        self._names = topic_names
        self._backoff = retry_backoff
        self._backoff_cap = retry_backoff_cap
        self._max_message = max_message_bytes
        # Per partition and per fetch: at least the largest record the broker may hold, so a big
        # record is read (and rejected) instead of stalling the fetch.
        self._fetch_bytes = max(4 * 1024 * 1024, 2 * max_fetch_bytes)
        self._lag_interval = lag_interval
        self._commit_interval = commit_interval
        # Offsets handled and committed in PostgreSQL, not yet committed to Kafka (see DEFAULT_COMMIT_INTERVAL).
        self._uncommitted: dict[TopicPartition, OffsetAndMetadata] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._rejected_topics: set[str] = set()
        self._open_work: set[UnitOfWork] = set()  # the transactions in progress (abort() cuts them)
        self.ready = asyncio.Event()
        self.progressed_at = time.monotonic()  # when a batch was last handled (the watchdog's proof of progress)
        # When the broker last answered this member's lag request: a client that stopped answering may show no lag
        # (its last figures) while messages wait, so the watchdog looks at this too (see unanswered()).
        self.answered_at = time.monotonic()

    async def run(self) -> None:
        """Consume until cancelled."""
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=self.group_id,
            client_id=f"wangge-{self.service}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=MAX_POLL_RECORDS,
            max_partition_fetch_bytes=self._fetch_bytes,
            fetch_max_bytes=max(52428800, self._fetch_bytes),
            fetch_min_bytes=FETCH_MIN_BYTES,
            fetch_max_wait_ms=fetch_max_wait_ms(self._lag_interval),
            **kafka_security.options(self._bootstrap),
        )
        self._partitions.clear()
        self.answered_at = time.monotonic()
        self._uncommitted.clear()  # a new member: what the last one handled but did not commit is replayed
        # Ready once the group has given this member its share, which may be none (a second
        # instance on a one-partition topic): the listener is told of every assignment, empty or not.
        self._consumer.subscribe(self.topics, listener=_Assignments(self))
        lag: asyncio.Task[None] | None = None
        committed_at = time.monotonic()
        try:
            await asyncio.wait_for(self._consumer.start(), KAFKA_CALL_TIMEOUT)
            park_only_whole_fetches(self._consumer, fetch_max_wait_ms(self._lag_interval))
            lag = asyncio.create_task(self._measure_lag(), name=f"{self.service}:lag {','.join(self.topics)}")
            while True:
                wait = 0.5 if not self._uncommitted else max(0.0, committed_at + self._commit_interval - time.monotonic())
                batch = await self._consumer.getmany(timeout_ms=int(1000 * wait))
                if batch:
                    await asyncio.gather(*(self._handle_partition(records) for records in batch.values()))
                    offsets = {tp: OffsetAndMetadata(records[-1].offset + 1, "") for tp, records in batch.items()}
                    self._uncommitted.update(offsets)
                    self._advanced(offsets)
                if not self._uncommitted:
                    self._requeue_unconfirmed()
                if self._uncommitted and time.monotonic() - committed_at >= self._commit_interval:
                    await self.commit_handled()
                    committed_at = time.monotonic()
        finally:
            # Shielded from the stopper's further cancellations (shared/tasks.py): what was handled is committed and
            # the member leaves its group, or the next member replays and waits for this one to expire.
            try:
                await finish(self._leave(lag), STOP_SECONDS + 2)
            except asyncio.TimeoutError:
                log.warning("the Kafka consumer of %s did not stop in %g s", self.group_id, STOP_SECONDS + 2)

    async def _leave(self, lag: asyncio.Task[None] | None) -> None:
        """Stopping: commit what was handled, so the next member does not replay it (harmless if it did), and leave
        the group; each step bounded, so a broker that does not answer keeps no restart waiting."""
        if lag is not None:
            await cancel_until_done({lag}, 2)
        try:
            await asyncio.wait_for(self.commit_handled(give_up_after=2), 3)
        except Exception as exc:  # noqa: BLE001 — a replay on the next start is harmless
            log.info("offsets of %s not committed at stop (%s); they are replayed", self.group_id, describe(exc))
        self._forget(list(self._partitions))
        try:
            # Not waited for longer; shielded, it still goes on in the background past the bound.
            await asyncio.wait_for(asyncio.shield(self._consumer.stop()), STOP_SECONDS - 3)
        except Exception as exc:  # noqa: BLE001 — the group expires the member by itself
            log.warning("the Kafka consumer of %s did not stop cleanly (%s)", self.group_id, describe(exc))

    def abort(self) -> None:
        """Cut the connections of the transactions in progress (they roll back): for a member torn down while a
        statement ignores its cancellation."""
        for work in list(self._open_work):
            work.abort()

    async def commit_handled(self, partitions: list[TopicPartition] | None = None, *,
                             give_up_after: float = KAFKA_CALL_TIMEOUT) -> None:
        """Commit to Kafka the offsets of what was handled (and committed in PostgreSQL) since the last commit, of
        these partitions or all; those of partitions no longer assigned are dropped (their new owner replays).
        Kafka not answering for `give_up_after` seconds, they are kept for the next commit."""
        assert self._consumer is not None
        assigned = self._consumer.assignment()
        chosen = [tp for tp in self._uncommitted if partitions is None or tp in partitions]
        taken = {tp: self._uncommitted.pop(tp) for tp in chosen}
        offsets = {tp: offset for tp, offset in taken.items() if tp in assigned}
        if offsets:
            await self._commit(offsets, give_up_after)

    async def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata], give_up_after: float) -> None:
        assert self._consumer is not None
        backoff = Backoff(self._backoff, self._backoff_cap)
        deadline = time.monotonic() + give_up_after
        while True:
            try:
                await asyncio.wait_for(self._consumer.commit(offsets), max(0.1, deadline - time.monotonic()))
                for tp, offset in offsets.items():
                    if (state := self._partitions.get(tp)) is not None:
                        state.committed_offset = offset.offset
                return
            except (CommitFailedError, IllegalStateError) as exc:
                # The group rebalanced under us: these partitions are another member's now. It
                # re-reads from the last commit, and the processed-event record makes that harmless.
                log.info("offsets not committed after a rebalance (%s); the new owner replays them", exc)
                return
            except Exception as exc:  # noqa: BLE001 — classified
                if not is_transient(exc):
                    raise
                if time.monotonic() >= deadline:
                    # Not committing only means a harmless replay later: the offsets wait for the next commit
                    # (unless a later one of the same partition is there already), and handling goes on.
                    for tp, offset in offsets.items():
                        self._uncommitted.setdefault(tp, offset)
                    log.warning("offsets of %s not committed (%s); kept for the next commit", self.group_id,
                                describe(exc))
                    return
                # Not committing only means a harmless replay later; still, try to record progress.
                log.warning("offset commit failed (%s); retrying", exc)
                await asyncio.sleep(min(backoff.next_delay(), max(0.0, deadline - time.monotonic())))

    # ---- lag and stalls ----------------------------------------------------------------------

    def _advanced(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """Offsets committed: progress; lag against the fetcher's high-water mark until the next refresh."""
        assert self._consumer is not None
        for tp, committed in offsets.items():
            state = self._partitions.get(tp)
            if state is None:
                continue
            state.next_offset = committed.offset
            state.progress_at = self.progressed_at = time.monotonic()
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                state.end_offset = max(state.end_offset or 0, highwater)
            self._publish_lag(tp, state)

    def _requeue_unconfirmed(self) -> None:
        """Queue again the offsets handled but not confirmed committed to Kafka. A commit refused in a rebalance
        that left this member its partitions, or given up while the broker was away, is not retried by anything
        else: with no message coming after it, the group would show that lag for good (and a restart would
        replay it)."""
        for tp, state in self._partitions.items():
            handled, committed = state.next_offset, state.committed_offset
            if handled is not None and (committed is None or committed < handled):
                self._uncommitted[tp] = OffsetAndMetadata(handled, "")

    def _touched(self, tp: TopicPartition) -> None:
        state = self._partitions.get(tp)
        if state is not None:
            state.progress_at = time.monotonic()

    async def _measure_lag(self) -> None:
        """Every `lag_interval`: the broker's end offsets minus what this member handled, per partition."""
        while True:
            await asyncio.sleep(self._lag_interval)
            try:
                await self.refresh_lag()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — a missed measurement is no reason to stop consuming
                log.warning("could not measure the lag of %s: %s", self.group_id, describe(exc))

    async def refresh_lag(self) -> None:
        """Ask the broker for the end offsets of the assigned partitions (and the group's commits where unknown)."""
        assert self._consumer is not None
        partitions = [tp for tp in self._consumer.assignment() if tp in self._partitions]
        if not partitions:
            self.answered_at = time.monotonic()
            return
        ends = await asyncio.wait_for(self._consumer.end_offsets(partitions), 10)
        unknown = [tp for tp in partitions if self._partitions[tp].next_offset is None]
        starts: dict[TopicPartition, int] = {}
        if unknown:
            starts = await asyncio.wait_for(self._consumer.beginning_offsets(unknown), 10)
        for tp in partitions:
            state = self._partitions.get(tp)
            if state is None:
                continue
            if state.next_offset is None:
                committed = await asyncio.wait_for(self._consumer.committed(tp), 10)
                # Handled meanwhile: what was handled is ahead of any commit (offsets are committed up to a second
                # later), and going back to the commit would show a lag no message will ever clear.
                if state.committed_offset is None:
                    state.committed_offset = committed
                if state.next_offset is None:
                    state.next_offset = committed if committed is not None else starts.get(tp, 0)
            state.end_offset = ends.get(tp, state.end_offset)
            if state.lag == 0:
                state.progress_at = time.monotonic()  # caught up: nothing waits on this partition
            self._publish_lag(tp, state)
        self.answered_at = time.monotonic()

    async def group_behind(self) -> int | None:
        """Records of this member's topics, on every partition (this member's or another's), that the whole group
        has not committed; None when this member is not running or a partition with records has no commit at all
        (the group's next reader of it starts from the earliest record). shared/claims.py prunes claims only
        behind a group that keeps up."""
        consumer = self._consumer
        if consumer is None:
            return None
        partitions = [TopicPartition(topic, p) for topic in self.topics
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return None
        ends = await asyncio.wait_for(consumer.end_offsets(partitions), 10)
        behind = 0
        for tp in partitions:
            committed = await asyncio.wait_for(consumer.committed(tp), 10)
            if committed is None:
                if ends.get(tp, 0) == 0:
                    continue  # nothing ever written there: nothing to read again
                return None
            behind += max(0, ends.get(tp, committed) - committed)
        return behind

    def unanswered(self, threshold: float) -> float | None:
        """Seconds since the broker last answered this member's lag request, when longer than `threshold`: its
        Kafka client is wedged (commits and fetches time out too) even if its last figures showed no lag."""
        silent = time.monotonic() - self.answered_at
        return silent if silent > threshold else None

    def _publish_lag(self, tp: TopicPartition, state: _Partition) -> None:
        labels = (self.service, self.group_id, tp.topic, str(tp.partition))
        lag = state.lag
        if lag is None:
            return
        CONSUMER_LAG.labels(*labels).set(lag)
        CONSUMER_STALLED_SECONDS.labels(*labels).set(time.monotonic() - state.progress_at if lag > 0 else 0)

    def stalled(self, threshold: float) -> list[tuple[TopicPartition, int, float]]:
        """(partition, lag, seconds without progress) of every partition with lag that made no progress for
        longer than `threshold` seconds."""
        found = []
        moment = time.monotonic()
        for tp, state in list(self._partitions.items()):
            lag = state.lag
            if lag:
                idle = moment - state.progress_at
                CONSUMER_STALLED_SECONDS.labels(self.service, self.group_id, tp.topic, str(tp.partition)).set(idle)
                if idle > threshold:
                    found.append((tp, lag, idle))
        return found

    def _assigned(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._partitions.setdefault(tp, _Partition())

    def _forget(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            if self._partitions.pop(tp, None) is not None:
                labels = (self.service, self.group_id, tp.topic, str(tp.partition))
                for gauge in (CONSUMER_LAG, CONSUMER_STALLED_SECONDS):
                    try:
                        gauge.remove(*labels)
                    except KeyError:
                        pass

    # ---- handling ----------------------------------------------------------------------------

    async def _handle_partition(self, records: list[ConsumerRecord]) -> None:
        """One unit of work for the partition's batch, one commit.

        First without savepoints (two round trips per message saved); should a handler fail, nothing of
        that attempt is kept and the batch is handled again with a savepoint per message, so that the
        failing message takes only its own effects with it (and is retried, then set aside). Should the
        batch fail for a reason that is not an outage (its commit refused, say), each message is tried
        again in a transaction of its own, so only the culprit is set aside.
        """
        try:
            try:
                rejections = await self._in_one_transaction(records, careful=False)
            except _HandlerFailed as failed:
                log.info("%s[%d]: %s; the batch of %d again, a savepoint per message", records[0].topic,
                         records[0].partition, failed, len(records))
                rejections = await self._in_one_transaction(records, careful=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 — not an outage (those are retried inside)
            if len(records) == 1:
                record = records[0]
                log.exception("%s[%d]@%d cannot be committed", record.topic, record.partition, record.offset)
                rejections = [(record, f"could not be committed: {describe(exc)}", [], "uncommittable")]
            else:
                log.warning("a batch of %d on %s failed (%s); handling its messages one by one",
                            len(records), records[0].topic, describe(exc))
                for record in records:
                    await self._handle_partition([record])
                return
        # After the commit, before the offsets: a crash in between replays the batch, which the
        # processed-event record makes harmless (the rejected topic may then see a message twice).
        for rejection in rejections:
            await self._reject(*rejection)

    async def _in_one_transaction(self, records: list[ConsumerRecord], *, careful: bool) -> list["_Rejection"]:
        backoff = Backoff(self._backoff, self._backoff_cap)
        reads = [self._read(record) for record in records]  # parsed once, whatever the retries
        handled = [r.id for r in reads if isinstance(r, Envelope) and (self._types is None or r.type in self._types)]
        while True:
            rejections: list[_Rejection] = []
            pending: list[Message[Any]] = []  # a bus's messages, handed to it together at the end of the batch
            try:
                async with UnitOfWork(self._pool) as uow:
                    self._open_work.add(uow)
                    uow.after_end(lambda u=uow: self._open_work.discard(u))
                    if not careful and self._bus is None:
                        uow.expect_claims(handled)
                    for record, read in zip(records, reads):
                        rejection = await self._handle_record(record, read, uow, careful, pending)
                        if rejection is not None:
                            rejections.append(rejection)
                        self._touched(TopicPartition(record.topic, record.partition))
                    if pending:
                        await self._hand_to_bus(pending, uow)
                    await uow.commit()
                return rejections
            except (asyncio.CancelledError, _HandlerFailed):
                raise
            except Exception as exc:  # noqa: BLE001 — classified
                if not is_transient(exc):
                    raise
                # Nothing of the batch was committed: all of it is tried again once the database answers.
                HANDLER_RETRIES.labels(self.service, "batch").inc()
                log.warning("%s: infrastructure unavailable (%s); retrying the batch of %d",
                            records[0].topic, describe(exc), len(records))
                await backoff.wait()

    async def _handle_record(self, record: ConsumerRecord, envelope_or_rejection: "Envelope | _Rejection",
                             uow: UnitOfWork, careful: bool, pending: list[Message[Any]]) -> "_Rejection | None":
        if not isinstance(envelope_or_rejection, Envelope):
            return envelope_or_rejection
        envelope = envelope_or_rejection
        if self._types is not None and envelope.type not in self._types:
            # Another service's business: skipped without a savepoint or a round trip.
            uow.after_commit(lambda: MESSAGES_CONSUMED.labels(self.service, record.topic, "ignored").inc())
            return None
        try:
            message = Message(envelope, parse_event(envelope), record)  # upcast to the current version
        except InvalidMessage as exc:
            return (record, exc.reason, exc.errors, "invalid-content")
        if not careful:
            if self._bus is not None:
                pending.append(message)  # the bus takes the batch's messages as sets, after the loop
                return None
            await _or_handled_again(self._call(message, uow, savepoint=False), f"{envelope.type} {envelope.id}")
            return None
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                await self._call(message, uow, savepoint=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — a bug must not stop the whole stream
                if is_transient(exc):
                    raise  # the whole batch waits for the infrastructure
                if isinstance(exc, InvalidMessage):
                    return (record, exc.reason, exc.errors, "invalid-content")
                HANDLER_RETRIES.labels(self.service, envelope.type).inc()
                log.exception("%s %s failed (attempt %d)", envelope.type, envelope.id, attempt)
                if attempt == MAX_ATTEMPTS:
                    return (record, f"handler failed: {describe(exc)}", [], "handler-error")
                # A conflict with another instance's transaction is settled by the time we retry.
                await asyncio.sleep(0.05 * attempt)
                continue
            return None
        return None

    async def _hand_to_bus(self, messages: list[Message[Any]], uow: UnitOfWork) -> None:
        """The batch's messages to the bus at once; a failure that is no outage has the batch handled again, each
        message in a savepoint of its own, so that only the culprit is set aside."""
        assert self._bus is not None
        started = time.perf_counter()
        await _or_handled_again(self._bus.handle_batch(messages, uow), f"a batch of {len(messages)}")
        share = (time.perf_counter() - started) / len(messages)
        for message in messages:
            HANDLER_SECONDS.labels(self.service, message.envelope.type).observe(share)
            uow.after_commit(lambda t=message.envelope.type, topic=message.record.topic:
                             MESSAGES_CONSUMED.labels(self.service, topic, t).inc())

    async def _call(self, message: Message[Any], uow: UnitOfWork, *, savepoint: bool) -> None:
        """The handler on one message (in a savepoint of its own if asked), timed, and counted once committed."""
        started = time.perf_counter()
        record, envelope = message.record, message.envelope
        token = _current_record.set(record)
        try:
            if savepoint:
                async with uow.savepoint():
                    await self._one(message, uow)
            else:
                await self._one(message, uow)
        finally:
            _current_record.reset(token)
        HANDLER_SECONDS.labels(self.service, envelope.type).observe(time.perf_counter() - started)
        uow.after_commit(lambda t=envelope.type: MESSAGES_CONSUMED.labels(self.service, record.topic, t).inc())

    async def _one(self, message: Message[Any], uow: UnitOfWork) -> None:
        if self._bus is not None:
            await self._bus.handle_batch([message], uow)
        else:
            await self._handler(message.envelope, uow)  # type: ignore[operator]

    def _read(self, record: ConsumerRecord) -> "Envelope | _Rejection":
        """The record's envelope, or why it is no message of the contract at all."""
        value = record.value
        if value is not None and len(value) > self._max_message:
            return (record, f"message too big: {len(value)} bytes; at most {self._max_message} are read", [],
                    "too-big")
        if value is not None:
            try:
                value.decode("utf-8")
            except UnicodeDecodeError as exc:
                return (record, f"not JSON: not UTF-8 ({exc.reason} at byte {exc.start})", [], "not-utf8")
        try:
            envelope = Envelope.from_json(value)
        except InvalidMessage as exc:
            return (record, exc.reason, exc.errors, "invalid-envelope")
        if envelope.type not in registered_types():
            return (record, f"unknown event type {envelope.type!r}: no contract defines it", [], "unknown-type")
        if self._verify is not None and (self._types is None or envelope.type in self._types):
            # Not handled unless its publisher may publish it (a type of another service's business is skipped
            # unread, as before: checking it here would reject it once per consumer group).
            refusal = self._verify(record, envelope)
            if refusal is not None:
                return (record, refusal, [], "unsigned")
        return envelope

    async def _reject(self, record: ConsumerRecord, reason: str, errors: list[dict[str, Any]], kind: str) -> None:
        """Put the message (or its first part) on the rejected topic with the reason; wait for Kafka's ack.

        Kafka refusing the full rejection for good (too big, say) gets the minimal one (reason, place,
        size, SHA-256); refusing that too, the rejection is logged and counted, and the consumer goes on.
        Only an outage is waited out.
        """
        target = self._names.rejected_for(record.topic)
        event = MessageRejected.of(record.value, reason=reason, errors=errors, topic=record.topic,
                                   partition=record.partition, offset=record.offset, key=record.key,
                                   rejected_by=self.service)
        key = _record_key(record.key)
        log.info("rejected %s[%d]@%d to %s: %s", record.topic, record.partition, record.offset, target, event.reason)
        problem = topic_name_problem(target)
        outcome = "lost" if problem else await self._send_rejection(target, key, event)
        if outcome == "refused":
            log.warning("%s refused the rejection of %s[%d]@%d; sending it without the original",
                        target, record.topic, record.partition, record.offset)
            REJECTIONS_DEGRADED.labels(self.service, record.topic, "minimal").inc()
            outcome = await self._send_rejection(target, key, event.minimal())
        if outcome != "sent":
            log.error("rejection of %s[%d]@%d (%d bytes, sha256 %s) could not be published to %s (%s): %s",
                      record.topic, record.partition, record.offset, event.original_size or 0,
                      event.original_sha256, target, problem or "refused", event.reason)
            REJECTIONS_DEGRADED.labels(self.service, record.topic, "lost").inc()
        MESSAGES_REJECTED.labels(self.service, record.topic, kind).inc()
        MESSAGES_CONSUMED.labels(self.service, record.topic, "rejected").inc()

    async def _send_rejection(self, target: str, key: str | None, event: MessageRejected) -> str:
        """'sent', or 'refused' for a permanent error; an outage is retried until it ends."""
        envelope = event.envelope(source=self.service)
        message = OutgoingMessage(target, key, envelope.to_json(), envelope.type)
        backoff = Backoff(self._backoff, self._backoff_cap)
        while True:
            try:
                await self._ensure_rejected_topic(target)
                await self._producer.send(message)
                return "sent"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — classified
                if is_permanent_kafka_error(exc) or not is_transient(exc):
                    log.warning("%s refused a rejection: %s", target, describe(exc))
                    return "refused"
                log.warning("could not publish to %s (%s); retrying", target, describe(exc))
                await backoff.wait()

    async def _ensure_rejected_topic(self, target: str) -> None:
        # A broker that does not create topics on first use would refuse the rejection forever.
        if target not in self._rejected_topics:
            await ensure_topics(self._bootstrap, [self._names.spec_for(target)])
            self._rejected_topics.add(target)


_Rejection = tuple[ConsumerRecord, str, list[dict[str, Any]], str]


async def _or_handled_again(work: Awaitable[None], what: str) -> None:
    """Handle without savepoints; a failure that is no outage becomes _HandlerFailed, so that the batch is handled
    again with a savepoint per message and only the culprit is set aside (an outage is waited out as it is)."""
    try:
        await work
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 — the batch is handled again, carefully
        if is_transient(exc):
            raise  # the whole batch waits for the infrastructure
        raise _HandlerFailed(f"{what} failed ({describe(exc)})") from exc


class _HandlerFailed(Exception):
    """A handler failed in a batch handled without savepoints: that attempt is rolled back, not committed."""


def _record_key(key: bytes | None) -> str | None:
    """The rejection's Kafka key: the original key, or its SHA-256 when it is too long to be one."""
    if key is None:
        return None
    text = key.decode("utf-8", "replace")
    if len(key) <= 1024:
        return text
    return "sha256:" + hashlib.sha256(key).hexdigest()


class _Assignments(ConsumerRebalanceListener):
    """Tells the consumer of its partitions, and sets its ready event on every assignment (empty or not)."""

    def __init__(self, consumer: EventConsumer):
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        """What was handled of the partitions given away is committed for their next owner; their lag is no
        longer ours."""
        try:
            await self._consumer.commit_handled(list(revoked))
        except Exception as exc:  # noqa: BLE001 — the next owner replays, harmlessly
            log.info("offsets of revoked partitions not committed (%s); their next owner replays them", describe(exc))
        self._consumer._forget(list(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        """This member has joined the group."""
        self._consumer._assigned(list(assigned))
        self._consumer.ready.set()

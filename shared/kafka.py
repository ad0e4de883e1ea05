"""Producing to Kafka: idempotent, acks=all, every send awaited before anything depends on it."""
from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    InvalidProducerEpoch, InvalidTopicError, MessageSizeTooLargeError, OutOfOrderSequenceNumber, UnknownProducerId,
)

from shared.errors import PERMANENT_KAFKA_ERRORS, TRANSIENT_KAFKA_ERRORS  # noqa: F401  (re-exported)
from shared import kafka_security
from shared.metrics import MESSAGES_PRODUCED
from shared.signing import Signer
from shared.topics import read_outside

log = logging.getLogger(__name__)

# The broker's default message.max.bytes (1 MiB + 12 bytes of batch overhead). A record above this
# can never be written; the producer refuses anything larger than its max_request_size itself.
BROKER_MAX_MESSAGE_BYTES = 1048588
DEFAULT_MAX_REQUEST_BYTES = 1048576
# What a record costs beyond its key and value (batch and record headers), with a margin.
RECORD_OVERHEAD_BYTES = 1024
# No linger: a caller (the outbox relay, a rejection) queues all its records without yielding to the event loop and then
# awaits them, so they leave together, one request per broker, whatever the linger; a linger only made every hop of a
# case wait.
PRODUCER_LINGER_MS = 0
# Batches stay at the client's 16 KiB per partition. Larger ones (512 KiB) put good records in one batch with a record
# the topic refuses (a topic's max.message.bytes bounds the batch, not the record), and the broker refused them all
# (tests/integration/test_poison.py); they cut no produce request in a burst either: relay turns are a few cases each.
# A consumer's fetch: answered as soon as one record arrives (see park_only_whole_fetches for the partitions it
# leaves out), else after this long. The client's 500 ms made the stack's fifteen-odd idle members keep the broker
# busy while nothing happens. Not much longer, and never longer than the member's lag interval (shared/consumer.py):
# its lag request (ListOffsets) waits behind its fetch on the same connection.
FETCH_MIN_BYTES = 1
FETCH_MAX_WAIT_MS = 3000


def fetch_max_wait_ms(lag_interval: float) -> int:
    """How long the broker may hold a member's fetch: FETCH_MAX_WAIT_MS, but at most its lag interval (and at least
    100 ms), so that its lag request, waiting behind the fetch on the same connection, is answered within one
    interval and the watchdog never reads a parked fetch as a wedged client (shared/watchdog.py)."""
    return min(FETCH_MAX_WAIT_MS, max(100, int(1000 * lag_interval)))


# aiokafka's fetcher (0.14) asks each broker one fetch at a time and leaves out of it every partition whose records the
# member has not taken yet. A fetch parked FETCH_MAX_WAIT_MS without such a partition made that partition's next
# record wait out the park: a case's second event (dispatched after accepted), a moment after the first, reached
# supervision up to 3 s late on a quiet street. So a fetch is parked long only when it asks for every partition;
# while records wait in the member, this briefly.
FETCH_BUSY_WAIT_MS = 20


def park_only_whole_fetches(consumer: Any, parked_ms: int) -> None:
    """Make a started AIOKafkaConsumer park its fetches `parked_ms` only while none of its partitions has records
    waiting to be taken (FETCH_BUSY_WAIT_MS otherwise). Reaches into aiokafka's fetcher (its version is pinned); if
    that changes shape, this raises at once rather than quietly leaving the late records in place."""
    fetcher = getattr(consumer, "_fetcher", None)
    build = getattr(fetcher, "_get_actions_per_node", None)
    if build is None or not hasattr(fetcher, "_records") or not hasattr(fetcher, "_fetch_max_wait_ms"):
        raise RuntimeError("aiokafka's fetcher has changed shape: review shared/kafka.park_only_whole_fetches")

    def actions(assignment: Any) -> Any:
        fetcher._fetch_max_wait_ms = FETCH_BUSY_WAIT_MS if fetcher._records else parked_ms
        return build(assignment)

    fetcher._get_actions_per_node = actions


# Errors after which the idempotent producer's sequence on a partition is out of step with the broker:
# a record the broker refused for good, or the symptoms of one. The producer is renewed.
_BREAKS_SEQUENCE: tuple[type[BaseException], ...] = (
    *PERMANENT_KAFKA_ERRORS, OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch,
)

_LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


def topic_name_problem(name: str) -> str | None:
    """Why Kafka would refuse this topic name, or None if it is a legal one (letters, digits, . _ -, ≤ 249)."""
    if not isinstance(name, str) or not name:
        return "empty topic name"
    if name in (".", ".."):
        return f"topic name {name!r} is reserved"
    if len(name) > 249:
        return f"topic name is {len(name)} characters long; Kafka takes at most 249"
    if not _LEGAL_TOPIC.match(name):
        shown = name if len(name) <= 80 else name[:80] + "…"
        return f"topic name {shown!r} has characters Kafka refuses (letters, digits, '.', '_', '-' only)"
    return None


@dataclass(frozen=True)
class OutgoingMessage:
    """One record to send: topic, key, the envelope's bytes and its type (for metrics)."""

    topic: str
    key: str | None
    value: bytes
    event_type: str
    headers: tuple[tuple[str, bytes], ...] = ()  # beyond the signer's, which the producer adds

    def size(self) -> int:
        """Roughly what the record weighs on the wire (key + value + overhead)."""
        return len(self.value) + (len(self.key.encode()) if self.key is not None else 0) + RECORD_OVERHEAD_BYTES


class Producer:
    """An idempotent producer shared by a service's outbox relay and dead-letter path."""

    def __init__(self, bootstrap: str, service: str, max_request_size: int = DEFAULT_MAX_REQUEST_BYTES,
                 signer: Signer | None = None):
        self.service = service
        # Every record this producer sends is signed as this principal (shared/signing.py): consumers accept an
        # event type only from the service that owns it.
        self.signer = signer
        self.max_request_size = max_request_size
        self._bootstrap = bootstrap
        self._producer = self._new()
        self._renewing: asyncio.Lock | None = None

    def _new(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=f"wangge-{self.service}",
            enable_idempotence=True,  # implies acks=all; no duplicates from retries
            acks="all",
            linger_ms=PRODUCER_LINGER_MS,
            request_timeout_ms=15000,
            # Larger records are refused here at once (MessageSizeTooLargeError, a permanent error)
            # instead of travelling to a broker that refuses them.
            max_request_size=self.max_request_size,
            **kafka_security.options(self._bootstrap),
        )

    async def start(self) -> None:
        """Connect to the broker."""
        await self._producer.start()

    async def stop(self) -> None:
        """Flush and disconnect."""
        await self._producer.stop()

    async def _renew(self, because: BaseException) -> None:
        """A fresh idempotent producer (new producer id). After the broker refused a record for good, the
        old one's sequence numbers on that partition are out of step and every later send there fails
        with OutOfOrderSequenceNumber; the records are sent again by their callers."""
        if self._renewing is None:
            self._renewing = asyncio.Lock()
        async with self._renewing:
            old = self._producer
            log.warning("renewing the Kafka producer of %s after %s", self.service, type(because).__name__)
            fresh = self._new()
            await fresh.start()
            self._producer = fresh
            try:
                await asyncio.wait_for(old.stop(), 20)
            except Exception as exc:  # noqa: BLE001 — the old one is done with either way
                log.warning("stopping the old producer: %s", exc)

    def refusal(self, message: OutgoingMessage) -> BaseException | None:
        """The permanent error sending this would meet (bad topic name, too big), checked locally; None if fine."""
        problem = topic_name_problem(message.topic)
        if problem is not None:
            return InvalidTopicError(problem)
        if message.size() > self.max_request_size:
            return MessageSizeTooLargeError(
                f"record of {message.size()} bytes is larger than the {self.max_request_size} bytes Kafka takes"
            )
        return None

    async def send_each(self, messages: list[OutgoingMessage]) -> list[BaseException | None]:
        """Send a batch in order; wait for every acknowledgement; the outcome of each (None = acknowledged).

        A record refused before sending (see `refusal`) is not sent: a topic name Kafka refuses would
        otherwise be looked up until the request times out, looking like a broker outage.
        """
        producer = self._producer
        pending: list[asyncio.Future | BaseException] = []
        stopped: BaseException | None = None
        # Signed together (one signature per batch: shared/signing.py), but for the topics outside systems read:
        # an owner's system checks one signature over its record, as documented. A record refused below stays in
        # its tree, which costs nothing: its path is simply never read.
        signatures = (self.signer.batch_headers([(m.topic, m.key, m.value) for m in messages], alone=read_outside)
                      if self.signer is not None else [[] for _ in messages])
        for m, signature in zip(messages, signatures):
            refused = self.refusal(m)
            if refused is not None:
                pending.append(refused)
                continue
            if stopped is not None:
                # Once one record could not be queued, the later ones wait too: sending them now
                # would put them on their partition before it, out of order.
                pending.append(stopped)
                continue
            try:
                headers = list(m.headers) + signature
                pending.append(await producer.send(m.topic, m.value, key=m.key.encode() if m.key is not None else None,
                                                   headers=headers or None))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — reported per record; the caller classifies it
                pending.append(exc)
                if not isinstance(exc, PERMANENT_KAFKA_ERRORS):
                    stopped = exc
        futures = [p for p in pending if not isinstance(p, BaseException)]
        results = iter(await asyncio.gather(*futures, return_exceptions=True))
        outcomes: list[BaseException | None] = []
        for m, p in zip(messages, pending):
            outcome = p if isinstance(p, BaseException) else next(results)
            if isinstance(outcome, BaseException):
                outcomes.append(outcome)
            else:
                outcomes.append(None)
                MESSAGES_PRODUCED.labels(self.service, m.topic, m.event_type).inc()
        broken = [o for o, p in zip(outcomes, pending)
                  if not isinstance(p, BaseException) and isinstance(o, _BREAKS_SEQUENCE)]
        if broken and producer is self._producer:
            await self._renew(broken[0])
        return outcomes

    async def send_all(self, messages: list[OutgoingMessage]) -> None:
        """Send a batch in order and wait until Kafka has acknowledged every one; raise the first failure."""
        for outcome in await self.send_each(messages):
            if outcome is not None:
                raise outcome

    async def send(self, message: OutgoingMessage) -> None:
        """Send one message and wait for its acknowledgement."""
        await self.send_all([message])

    async def ping(self) -> None:
        """Raise unless the broker answers a metadata request (on this producer's own connection)."""
        await self._producer.client.fetch_all_metadata()

    async def renew(self, reason: str) -> None:
        """Replace the producer by a fresh one (its connections stuck while the broker answers others)."""
        await self._renew(RuntimeError(reason))


async def broker_answers(bootstrap: str, timeout: float = 5.0) -> None:
    """Raise unless the broker answers a new connection's metadata request within `timeout`: a check that does
    not depend on any client of the process, which may itself be what is stuck."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000),
                            **kafka_security.options(bootstrap))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout)
    finally:
        await client.close()

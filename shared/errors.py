"""Which failures are worth retrying: the one place errors are classified.

Two kinds, and every loop that talks to PostgreSQL or Kafka (consumer, outbox relay, deadline
poller, delivery worker, HTTP error handler) asks this module which one it holds:

* **transient** — the infrastructure is briefly away or busy: PostgreSQL restarting, failing over,
  a connection cut, a serialization failure or deadlock; Kafka unreachable, a leader moving, a
  timeout. The same work succeeds later, so it is retried with capped exponential backoff and
  jitter, for as long as it takes. A valid event is never set aside because of one.
* **permanent** — the work itself cannot succeed: input that does not fit the contract, a record
  too big for the broker, a topic name Kafka refuses, a handler bug that fails every attempt. It
  is set aside at once (bad input, a refused record) or after a few attempts (a handler error),
  with its reason, and the stream goes on.

`is_transient(exc)` looks through the exception's causes too: a handler that wraps a lost
connection in its own error is still waiting for the database, not holding bad data.
"""
from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import asyncpg
from aiokafka import errors as kafka_errors

# PostgreSQL (and the network under it): the same transaction may succeed when tried again.
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.PostgresConnectionError,     # 08*: connection failure, does not exist, rejected
    asyncpg.exceptions.InterfaceError,              # the client's connection is closed
    asyncpg.exceptions.OperatorInterventionError,   # 57*: admin shutdown (pg_terminate_backend), crash, starting up
    asyncpg.exceptions.InsufficientResourcesError,  # 53*: too many connections, out of memory or disk
    asyncpg.exceptions.TransactionRollbackError,    # 40*: serialization failure, deadlock
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a failover left us on a standby for a moment
    asyncpg.exceptions.LockNotAvailableError,       # lock_timeout
    # The client's connection in a state it cannot leave ("another operation is in progress"): a connection whose
    # statement the server's death cut short, handed out again. A new connection does the same work; setting the
    # message aside instead would lose a valid report to an outage.
    asyncpg.exceptions.InternalClientError,
)

# Kafka errors that no retry can cure: the record or its topic is what is wrong.
PERMANENT_KAFKA_ERRORS: tuple[type[BaseException], ...] = (
    kafka_errors.MessageSizeTooLargeError,   # larger than max_request_size, or the broker's message.max.bytes
    kafka_errors.RecordTooLargeError,
    kafka_errors.RecordListTooLargeError,
    kafka_errors.InvalidTopicError,
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.PolicyViolationError,
    kafka_errors.CorruptRecordException,
    kafka_errors.InvalidTimestampError,
    kafka_errors.UnsupportedForMessageFormatError,
    kafka_errors.InvalidRequestError,
    kafka_errors.IllegalArgumentError,
    kafka_errors.UnsupportedCodecError,
)

# Every other Kafka error (broker away, leader moving, timeouts, metadata not there yet) is retried.
TRANSIENT_KAFKA_ERRORS: tuple[type[BaseException], ...] = (kafka_errors.KafkaError, OSError, asyncio.TimeoutError)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (*TRANSIENT_DB_ERRORS, *TRANSIENT_KAFKA_ERRORS)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return seen


def is_permanent_kafka_error(exc: BaseException) -> bool:
    """A produce error no retry can cure (too big, invalid topic, refused by policy)."""
    return isinstance(exc, PERMANENT_KAFKA_ERRORS)


def is_transient(exc: BaseException) -> bool:
    """Whether the same work may succeed when retried later (the infrastructure was away), looking at causes too."""
    if is_permanent_kafka_error(exc):
        return False
    # An InvalidMessage (or any error) raised while the database was going away is the outage speaking.
    return any(isinstance(e, TRANSIENT_ERRORS) and not is_permanent_kafka_error(e) for e in _chain(exc))


def describe(exc: BaseException, limit: int = 500) -> str:
    """`TypeName: message`, cut to `limit` characters (a reason for a rejected topic or a failed row)."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Backoff:
    """Capped exponential backoff with full jitter: base·2^n seconds, at most `cap`, times a random 0.5–1."""

    base: float = 1.0
    cap: float = 30.0
    attempt: int = 0

    def next_delay(self) -> float:
        """The delay before the next retry (and count this attempt)."""
        delay = min(self.cap, self.base * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return delay * random.uniform(0.5, 1.0)

    async def wait(self) -> None:
        """Sleep before the next retry."""
        await asyncio.sleep(self.next_delay())

    def reset(self) -> None:
        """The work succeeded: the next failure starts from `base` again."""
        self.attempt = 0

"""How a delivery moves after each attempt: sent, retried later, or settled as failed. Pure, no I/O.

A reply is retried for as long as it is useful (until its expiry, 24 h by default), never "given
up after N attempts": a gateway down for an hour must not cost residents their replies.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Callable, Literal

BACKOFF_BASE_SECONDS = 1.0
# Capped low: after an outage ends, a waiting reply goes out within half a minute, and even
# thousands waiting cost the gateway only tens of requests a second while it is down.
BACKOFF_CAP_SECONDS = 30.0
# A worker that has not recorded an outcome this long after taking a row is presumed dead; the
# row may have reached the gateway and is sent again under the same idempotency key.
LEASE_SECONDS = 60.0


class Outcome(Enum):
    """What a channel said about one attempt."""

    DELIVERED = "delivered"  # the gateway took it (2xx)
    REFUSED = "refused"  # the gateway will never take it (4xx): retrying cannot help
    UNAVAILABLE = "unavailable"  # 5xx, 408/425/429, timeout, connection refused: may work later


@dataclass(frozen=True)
class AttemptResult:
    """One attempt's outcome and, if it did not succeed, why."""

    outcome: Outcome
    detail: str | None = None


@dataclass(frozen=True)
class Message:
    """What a channel sends: the delivery id as ref / idempotency key (the gateway de-duplicates), address, text."""

    ref: str
    to: str
    text: str
    case_no: str = ""  # e-mail subjects and webhook bodies name the case and the kind of reply
    kind: str = ""


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter: base·2^(n-1) capped, then a random share of it."""

    base_seconds: float = BACKOFF_BASE_SECONDS
    cap_seconds: float = BACKOFF_CAP_SECONDS
    # The delay is drawn from [(1 - jitter)·d, d]: instances retrying after one outage spread out
    # instead of hitting the gateway together the moment it is back.
    jitter: float = 0.5
    lease_seconds: float = LEASE_SECONDS


@dataclass(frozen=True)
class Transition:
    """The delivery's state after an attempt; retry_in is set when it stays pending."""

    state: Literal["pending", "sent", "failed"]
    attempts: int
    retry_in: float | None = None
    error: str | None = None

    @property
    def final(self) -> bool:
        """Sent or failed: the resident's reply is settled and reply.issued goes out."""
        return self.state != "pending"


def backoff(attempts: int, policy: RetryPolicy = RetryPolicy()) -> float:
    """Seconds before the next try after `attempts` failed ones, before jitter: 1, 2, 4, 8… capped."""
    exponent = min(max(attempts - 1, 0), 62)  # 2.0**1024 overflows; the cap is reached long before
    return min(policy.base_seconds * 2.0 ** exponent, policy.cap_seconds)


def retry_delay(attempts: int, policy: RetryPolicy = RetryPolicy(),
                rand: Callable[[], float] = random.random) -> float:
    """The jittered delay: uniformly within [(1 - jitter)·backoff, backoff]."""
    delay = backoff(attempts, policy)
    return delay * (1.0 - policy.jitter * rand())


def expires_at(created_at: datetime, ttl_hours: float) -> datetime:
    """Until when a reply is worth delivering (a 'your case is accepted' SMS two days late is noise)."""
    return created_at + timedelta(hours=ttl_hours)


def expired(expiry: datetime, now: datetime) -> bool:
    """Whether a reply's useful life is over."""
    return now >= expiry


def after_attempt(attempts_before: int, result: AttemptResult, *, now: datetime, expiry: datetime,
                  policy: RetryPolicy = RetryPolicy(), rand: Callable[[], float] = random.random) -> Transition:
    """The next state of a delivery given what its latest attempt returned, the time and its expiry."""
    attempts = attempts_before + 1
    if result.outcome is Outcome.DELIVERED:
        return Transition("sent", attempts)
    if result.outcome is Outcome.REFUSED:
        return Transition("failed", attempts, error=result.detail or "refused by the gateway")
    delay = retry_delay(attempts, policy, rand)
    if now + timedelta(seconds=delay) >= expiry:
        return Transition("failed", attempts, error=f"not delivered before it expired ({attempts} attempts; "
                                                    f"last: {result.detail})")
    return Transition("pending", attempts, retry_in=delay, error=result.detail)

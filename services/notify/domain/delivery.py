"""How a delivery moves after each attempt: sent, retried later, or given up. Pure, no I/O."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

MAX_ATTEMPTS = 5
BACKOFF_CAP_SECONDS = 60.0


class Outcome(Enum):
    """What a channel said about one attempt."""

    DELIVERED = "delivered"  # the gateway took it (2xx)
    REFUSED = "refused"  # the gateway will never take it (4xx): retrying cannot help
    UNAVAILABLE = "unavailable"  # 5xx, timeout, connection refused: may work later


@dataclass(frozen=True)
class AttemptResult:
    """One attempt's outcome and, if it did not succeed, why."""

    outcome: Outcome
    detail: str | None = None


@dataclass(frozen=True)
class Message:
    """What a channel sends: the delivery id as ref (the gateway de-duplicates on it), address, text."""

    ref: str
    to: str
    text: str


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


def retry_delay(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: 1, 2, 4, 8… capped."""
    return min(2.0 ** max(attempts - 1, 0), BACKOFF_CAP_SECONDS)


def after_attempt(attempts_before: int, result: AttemptResult) -> Transition:
    """The next state of a pending delivery given what its latest attempt returned."""
    attempts = attempts_before + 1
    if result.outcome is Outcome.DELIVERED:
        return Transition("sent", attempts)
    if result.outcome is Outcome.REFUSED:
        return Transition("failed", attempts, error=result.detail or "refused by the gateway")
    if attempts >= MAX_ATTEMPTS:
        return Transition("failed", attempts, error=f"gave up after {attempts} attempts: {result.detail}")
    return Transition("pending", attempts, retry_in=retry_delay(attempts), error=result.detail)

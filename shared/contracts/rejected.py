"""What a consumer could not accept, as it appears on a rejected/dead-letter topic."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.contracts.registry import EventModel, event


@event
class MessageRejected(EventModel):
    """An inbound message that was not accepted, the reason, and the message itself."""

    TYPE = "message.rejected"
    reason: str
    errors: list[dict[str, Any]] = Field(default_factory=list)
    topic: str
    partition: int
    offset: int
    key: str | None = None
    original: Any = Field(description="the message as received: parsed JSON, or the raw text")
    rejected_by: str

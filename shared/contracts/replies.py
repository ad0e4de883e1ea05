"""Replies to residents on `wangge.replies`."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.contracts.registry import EventModel, event

ReplyKind = Literal["acknowledgement", "progress", "resolution", "explanation", "survey", "rejection"]
ReplyState = Literal["sent", "failed", "held"]


@event
class ReplyIssued(EventModel):
    """One reply to a resident, on one channel, with its delivery state."""

    TYPE = "reply.issued"
    case_no: str
    kind: ReplyKind
    channel: str
    to: str = Field(description="the address, masked")
    text: str
    state: ReplyState
    delivery_id: str
    detail: str | None = Field(default=None, description="why it failed or is held")

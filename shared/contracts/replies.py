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
    event_id: str | None = Field(default=None, max_length=200,
                                 description="the id of the case event this reply answers (on wangge.cases): the copies "
                                             "of one reply (the reporter's, each follower's, a resend) share it; the "
                                             "same words at another step have another. Absent in replies issued "
                                             "before it was added")

"""What a consumer could not accept, as it appears on a rejected/dead-letter topic.

A rejection must always fit on Kafka, whatever it wraps: 288 KB of control bytes become 1.7 MB of
JSON escapes. So the original is kept whole only when small, otherwise its first part, flagged
`truncated`, and always its size and SHA-256 (enough to find it again on the source topic at
`topic`/`partition`/`offset`, and to prove which message it was). Reason, errors and key are cut too.

A rejection is read by more than the sender (every bridge reads wangge.reports.rejected) and kept for 90 days, past
the erasure of the case it was about: so a resident's contact in it is masked (DESIGN "Personal data") — a
reporter's or contact's phone, e-mail and name, and phone numbers in free text (`shared.personal_data.mask_message`). The SHA-256 is of
the message as received, so the sender can still find it again.
"""
from __future__ import annotations

import base64
import hashlib
from typing import Any, Literal

import orjson
from pydantic import Field

from shared.contracts.registry import EventModel, event
from shared.personal_data import mask_message, mask_personal

# How much of the original a rejection carries (bytes of JSON); the whole envelope stays far below 1 MB.
ORIGINAL_LIMIT = 64 * 1024
REASON_LIMIT = 2000
ERRORS_LIMIT = 20
ERROR_TEXT_LIMIT = 300
KEY_LIMIT = 1024


@event
class MessageRejected(EventModel):
    """An inbound message that was not accepted, the reason, and the message itself (or its first part)."""

    TYPE = "message.rejected"
    reason: str
    errors: list[dict[str, Any]] = Field(default_factory=list)
    topic: str
    partition: int
    offset: int
    key: str | None = None
    original: Any = Field(
        default=None,
        description="the message as received: parsed JSON, its text, or base64 of bytes that are not UTF-8; "
        "only its first part when `truncated`; null in a minimal rejection")
    original_format: Literal["json", "text", "base64", "none"] = Field(
        default="json", description="how `original` holds the message")
    truncated: bool = Field(default=False, description="`original` is only the first part of the message")
    original_size: int | None = Field(default=None, description="bytes of the message as received")
    original_sha256: str | None = Field(default=None, description="SHA-256 (hex) of the message as received")
    rejected_by: str

    @classmethod
    def of(cls, value: bytes | None, *, reason: str, errors: list[dict[str, Any]] | None = None, topic: str,
           partition: int, offset: int, key: bytes | None, rejected_by: str,
           original_limit: int = ORIGINAL_LIMIT) -> "MessageRejected":
        """The rejection of one message, every part cut to a size Kafka takes."""
        original, fmt, truncated = keep_original(value, original_limit)
        return cls(
            reason=cut(mask_personal(reason), REASON_LIMIT),
            errors=[{k: mask_personal(v) for k, v in e.items()} for e in cap_errors(errors or [])],
            topic=topic, partition=partition, offset=offset,
            key=_key_text(key),
            original=mask_message(original) if fmt in ("json", "text") else original,
            original_format=fmt, truncated=truncated,
            original_size=len(value) if value is not None else None,
            original_sha256=hashlib.sha256(value).hexdigest() if value is not None else None,
            rejected_by=rejected_by,
        )

    def minimal(self) -> "MessageRejected":
        """The same rejection without the original, errors or key: what to send when the full one is refused."""
        return self.model_copy(update={
            "errors": [], "key": cut(self.key, 200) if self.key else None, "original": None,
            "original_format": "none", "truncated": self.original_size is not None, "reason": cut(self.reason, 500),
        })


def cut(text: str, limit: int) -> str:
    """At most `limit` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cap_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first ERRORS_LIMIT errors, each value cut to ERROR_TEXT_LIMIT characters."""
    capped = [{str(k)[:100]: cut(v if isinstance(v, str) else str(v), ERROR_TEXT_LIMIT) for k, v in list(e.items())[:10]}
              for e in errors[:ERRORS_LIMIT] if isinstance(e, dict)]
    if len(errors) > ERRORS_LIMIT:
        capped.append({"field": "", "error": f"… and {len(errors) - ERRORS_LIMIT} more"})
    return capped


def keep_original(value: bytes | None, limit: int = ORIGINAL_LIMIT) -> tuple[Any, str, bool]:
    """(original, format, truncated): parsed JSON if it is small JSON, else (the first part of) its text,
    else base64 of (the first part of) its bytes; never more than about `limit` bytes once serialised."""
    if value is None:
        return None, "none", False
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        head = value[: limit * 3 // 4]
        return base64.b64encode(head).decode("ascii"), "base64", len(head) < len(value)
    if len(value) <= limit:
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            pass
        else:
            if len(orjson.dumps(parsed)) <= limit:
                return parsed, "json", False
    # Text: JSON escapes may make it up to six times longer (control characters); cut until it fits.
    kept = text[:limit]
    while len(orjson.dumps(kept)) > limit:
        kept = kept[: max(0, len(kept) * limit // len(orjson.dumps(kept)) - 8)]
    return kept, "text", len(kept) < len(text)


def _key_text(key: bytes | None) -> str | None:
    if key is None:
        return None
    return cut(key.decode("utf-8", "replace"), KEY_LIMIT)

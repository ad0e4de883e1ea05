"""The cursor of a coordinator's own reports (GET /api/v1/coordinator/reports): where the last page stopped. Pure.

Keyset paging like the owner's task list (task_cursor.py): newest first by (reported_at, case id); the cursor
names the coordinator it was issued to, so another's cursor is refused rather than read.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

MAX_CURSOR_CHARS = 1000


class BadCursor(ValueError):
    """The cursor is not one this service issued for the caller: the reason says what is wrong."""


@dataclass(frozen=True)
class ReportPosition:
    """The last report of a page: its report time and case id."""

    reported_at: datetime
    case_id: str


def encode(worker: str, last: ReportPosition) -> str:
    payload = {"v": 1, "worker": worker, "at": last.reported_at.isoformat(), "id": last.case_id}
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode(cursor: str, worker: str) -> ReportPosition:
    """The position a cursor names, for the coordinator asking; BadCursor if garbled or issued to another."""
    if not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise BadCursor("cursor: not a cursor of this list (empty or too long) (翻页标记无效)")
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadCursor("cursor: not a cursor of this list (it does not decode); use the `next` of a previous page "
                        "(翻页标记无效)")
    if not isinstance(payload, dict) or payload.get("v") != 1:
        raise BadCursor("cursor: not a cursor of this list (unknown form) (翻页标记无效)")
    if payload.get("worker") != worker:
        raise BadCursor("cursor: issued for another coordinator's list; start again without a cursor (翻页标记无效)")
    at, case_id = payload.get("at"), payload.get("id")
    if not (isinstance(at, str) and isinstance(case_id, str)) or any(ch < " " for ch in case_id):
        raise BadCursor("cursor: not a cursor of this list (fields missing) (翻页标记无效)")
    try:
        reported_at = datetime.fromisoformat(at)
    except ValueError:
        raise BadCursor("cursor: not a cursor of this list (bad time) (翻页标记无效)")
    if reported_at.tzinfo is None:
        raise BadCursor("cursor: not a cursor of this list (time without offset) (翻页标记无效)")
    return ReportPosition(reported_at=reported_at, case_id=case_id)

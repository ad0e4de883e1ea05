"""The cursor of the owner's task list: where the last page stopped. Pure.

Keyset paging, not OFFSET: a page starts strictly after the last task of the previous one in the list's
order (deadline, case number, case id), so a task that arrives or leaves meanwhile neither shifts nor
repeats the others, and the database reads only the page from the index.

The cursor is opaque to clients (url-safe base64 of a small JSON) and names the owner it was issued to:
another owner's cursor is refused rather than read, so it cannot be used to probe that owner's list.
A cursor an owner writes by hand can only point into that owner's own list, which it may read anyway.

The list reads either way: due first (the default) or due last (an owner with thousands of tasks reaches the
latest deadline in one step). A cursor names the order it was issued in, and is refused in the other: a place in
one order read as a place in the other would skip or repeat tasks.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

ORDERS = ("due_first", "due_last")

# Longer than any cursor this module writes (owner code, case number and id are at most ~100 chars each).
MAX_CURSOR_CHARS = 1000


class BadCursor(ValueError):
    """The cursor is not one this service issued for the caller: the reason says what is wrong."""


@dataclass(frozen=True)
class TaskPosition:
    """The last task of a page, in the list's order (due_first or due_last). due_at None sorts after every deadline
    (so first of all when read due last)."""

    due_at: datetime | None
    case_no: str
    case_id: str
    order: str = "due_first"


def encode(owner: str, last: TaskPosition) -> str:
    payload = {"v": 1, "owner": owner, "due": last.due_at.isoformat() if last.due_at else None,
               "no": last.case_no, "id": last.case_id}
    if last.order != "due_first":  # the default is left out: cursors issued before there was a choice still read
        payload["order"] = last.order
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode(cursor: str, owner: str) -> TaskPosition:
    """The position a cursor names, for the owner asking; BadCursor if it is garbled or issued to another."""
    if not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise BadCursor("cursor: not a cursor of this list (empty or too long)")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw.decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadCursor("cursor: not a cursor of this list (it does not decode); use the `next` of a previous page")
    if not isinstance(payload, dict) or payload.get("v") != 1:
        raise BadCursor("cursor: not a cursor of this list (unknown form)")
    if payload.get("owner") != owner:
        raise BadCursor("cursor: issued for another list than the caller's; start again without a cursor")
    due, case_no, case_id = payload.get("due"), payload.get("no"), payload.get("id")
    order = payload.get("order", "due_first")
    if order not in ORDERS:
        raise BadCursor("cursor: not a cursor of this list (unknown order)")
    if not (isinstance(case_no, str) and isinstance(case_id, str) and (due is None or isinstance(due, str))):
        raise BadCursor("cursor: not a cursor of this list (fields missing)")
    if any(ch < " " for ch in case_no + case_id):  # PostgreSQL cannot even compare text with a NUL in it
        raise BadCursor("cursor: not a cursor of this list (control characters)")
    try:
        due_at = datetime.fromisoformat(due) if due is not None else None
    except ValueError:
        raise BadCursor("cursor: not a cursor of this list (bad deadline)")
    if due_at is not None and due_at.tzinfo is None:
        raise BadCursor("cursor: not a cursor of this list (deadline without offset)")
    return TaskPosition(due_at=due_at, case_no=case_no, case_id=case_id, order=order)

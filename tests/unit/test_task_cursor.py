"""The owner's task-list cursor (services/supervision/domain/task_cursor.py): it names the order it was issued in,
a cursor from before there was a choice reads as due first, and an order it does not know is refused."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest

from services.supervision.domain.task_cursor import BadCursor, TaskPosition, decode, encode

DUE = datetime(2026, 12, 6, 9, 30, tzinfo=timezone(timedelta(hours=8)))


def raw(payload: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def test_a_cursor_keeps_its_order_both_ways():
    for order in ("due_first", "due_last"):
        position = TaskPosition(DUE, "20261206-0001", "case-1", order)
        assert decode(encode("huanwei", position), "huanwei") == position
    backwards = TaskPosition(None, "20261206-0002", "case-2", "due_last")
    assert decode(encode("huanwei", backwards), "huanwei").order == "due_last"


def test_a_cursor_issued_before_the_choice_reads_due_first():
    old = raw({"v": 1, "owner": "huanwei", "due": DUE.isoformat(), "no": "20261206-0001", "id": "case-1"})
    assert decode(old, "huanwei").order == "due_first"
    assert "order" not in json.loads(base64.urlsafe_b64decode(
        encode("huanwei", TaskPosition(DUE, "x", "y")) + "==").decode())


@pytest.mark.parametrize("order", ["sideways", None, 1, ""])
def test_an_order_it_does_not_know_is_refused(order):
    forged = raw({"v": 1, "owner": "huanwei", "due": None, "no": "x", "id": "y", "order": order})
    with pytest.raises(BadCursor, match="order"):
        decode(forged, "huanwei")

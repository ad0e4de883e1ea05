"""Time in the street's zone: every timestamp we write is ISO 8601 with an offset."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from shared.settings import get_settings


def street_zone() -> ZoneInfo:
    """The street's time zone (Asia/Shanghai unless configured)."""
    return ZoneInfo(get_settings().street_timezone)


# How far tests moved the clock (move_clock): zero in services. Only forwards, so that what the database stamped
# with its own now() is never in the moved clock's future.
_moved = timedelta(0)
# A clock a test stopped (move_clock(..., stopped=True)): every reader sees the same moment.
_stopped: datetime | None = None


def now() -> datetime:
    """The current time as an aware datetime in the street's zone (plus what a test moved the clock by)."""
    if _stopped is not None:
        return _stopped.astimezone(street_zone())
    return datetime.now(street_zone()) + _moved


class Clock:
    """The time as a message bus hands it to handlers (shared/messagebus.py): the street's now(), which tests move
    with move_clock — or they hand the bus a clock of their own."""

    def now(self) -> datetime:
        return now()


def move_clock(to: datetime | None, *, stopped: bool = False) -> None:
    """For tests: from now on now() reads `to` (advancing with the wall clock, or standing still at `to` if
    `stopped`, so that several readers answer for one moment); None puts the clock back."""
    global _moved, _stopped
    if to is None:
        _moved, _stopped = timedelta(0), None
        return
    delta = to - datetime.now(street_zone())
    if delta < timedelta(0):
        raise ValueError("the clock only moves forwards (rows the database stamped must not lie in its future)")
    _moved, _stopped = delta, (to if stopped else None)


def to_street_time(moment: datetime) -> datetime:
    """The same instant expressed in the street's zone."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every time in wangge carries an offset")
    return moment.astimezone(street_zone())

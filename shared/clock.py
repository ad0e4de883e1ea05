"""Time in the street's zone: every timestamp we write is ISO 8601 with an offset."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from shared.settings import get_settings


def street_zone() -> ZoneInfo:
    """The street's time zone (Asia/Shanghai unless configured)."""
    return ZoneInfo(get_settings().street_timezone)


def now() -> datetime:
    """The current time as an aware datetime in the street's zone."""
    return datetime.now(street_zone())


def to_street_time(moment: datetime) -> datetime:
    """The same instant expressed in the street's zone."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every time in wangge carries an offset")
    return moment.astimezone(street_zone())

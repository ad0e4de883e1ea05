"""Quiet hours (免打扰时段): when a reply may go out. Pure, no I/O.

The rule: between the street's quiet hours (replies.quiet_hours in its configuration, 22:00–08:00 by
default) an SMS that is not urgent waits until they end. Urgent, and sent at once at any hour:
- `escalation`: the SMS to the leader on duty (带班领导) — a case escalated to the street leadership is what
  the leader on duty is on duty for;
- `acknowledgement`: the receipt of a report the resident has just made (they are awake: they just reported,
  and a 110-style hotline answers at night too).
E-mail and webhooks wake no one: they go at any hour.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta

from shared.clock import to_street_time

URGENT_KINDS = frozenset({"escalation", "acknowledgement"})
QUIET_CHANNELS = frozenset({"sms"})


def quiet_until(moment: datetime, quiet: tuple[time, time] | None) -> datetime | None:
    """The end of the quiet hours `moment` falls in (an aware datetime in the street's zone), or None."""
    if quiet is None:
        return None
    start, end = quiet
    local = to_street_time(moment)
    clock = local.time().replace(tzinfo=None)
    today_end = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if start < end:  # within one day, e.g. 12:00–14:00
        return today_end if start <= clock < end else None
    if clock >= start:  # across midnight, before it: until tomorrow's end
        return today_end + timedelta(days=1)
    if clock < end:  # across midnight, after it
        return today_end
    return None


def hold_until(*, kind: str, channel: str, moment: datetime, quiet: tuple[time, time] | None) -> datetime | None:
    """Until when a reply must wait (None: send it now)."""
    if kind in URGENT_KINDS or channel not in QUIET_CHANNELS:
        return None
    return quiet_until(moment, quiet)

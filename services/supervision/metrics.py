"""Supervision's Prometheus metrics (labelled by service, like shared/metrics.py)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DEADLINES_FIRED = Counter(
    "wangge_deadlines_fired_total", "Deadlines fired: kind=warning (75%) or overdue (100%)", ["service", "kind"]
)
DEADLINE_DELAY = Histogram(
    "wangge_deadline_delay_seconds",
    "How long after its moment a deadline fired (poll interval, outages, restarts)",
    ["service", "kind"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 86400),
)
# Every kind of clock (handling and the dispatch, sign and check stages): what clock_store.count_running counts.
CLOCKS_RUNNING = Gauge("wangge_clocks_running", "Clocks running now (handling and stage clocks; suspended ones not)",
                       ["service"])
CLOCKS_OVERDUE = Gauge("wangge_clocks_overdue", "Running clocks past their deadline now (handling and stage clocks)",
                       ["service"])
CASE_EVENTS_REFUSED = Counter(
    "wangge_case_events_refused_total", "Case events kept in history but not allowed by the case's state",
    ["service", "type"],
)
DEADLINES_FAULTED = Counter(
    "wangge_deadlines_faulted_total",
    "Clocks the poller could not fire (an owner code that cannot be a topic, a processing error), marked and skipped",
    ["service", "kind"],
)
CLOCKS_FAULTED = Gauge("wangge_clocks_faulted", "Running clocks marked faulted and skipped by the poller now", ["service"])
CALENDAR_UNKNOWN_YEAR = Counter(
    "wangge_calendar_unknown_year_total",
    "Clock deadlines placed in a year neither chinesecalendar nor the street's override table knows (counted "
    "Monday–Friday, flagged calendar_assumed)",
    ["service", "kind"],
)
# People's sign-in (services/supervision/people.py): a rise of `wrong` and `locked` is someone guessing.
SIGN_INS = Counter(
    "wangge_sign_ins_total",
    "Sign-in attempts by outcome: ok, wrong (password or username), locked (429), refused (disabled or demo account)",
    ["service", "outcome"],
)
# Owners' updates that came before their case's dispatch (handlers.OwnerUpdates): held, then released or expired.
HELD_UPDATES = Counter(
    "wangge_held_updates_total",
    "Owners' updates that overtook their case's dispatch: held, released (decided when the dispatch was folded), "
    "expired (refused after the bound), failed (could not be applied: logged, dropped), over_cap (refused at once: "
    "its owner had WANGGE_HELD_UPDATES_PER_OWNER held already)",
    ["service", "outcome"],
)

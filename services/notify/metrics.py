"""notify's Prometheus metrics (labelled by service, like shared/metrics.py)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SERVICE = "notify"

DELIVERIES = Counter(
    "wangge_notify_deliveries_total",
    "Deliveries by the state they reached (pending = created; sent, failed, held = settled)",
    ["service", "channel", "kind", "state"],
)
DELIVERY_ATTEMPTS = Counter(
    "wangge_notify_delivery_attempts_total",
    "Attempts to hand a message to a channel, by outcome (delivered, refused, unavailable)",
    ["service", "channel", "outcome"],
)
DELIVERY_SECONDS = Histogram(
    "wangge_notify_delivery_seconds",
    "Time for one channel attempt",
    ["service", "channel"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DELIVERIES_WAITING = Gauge(
    "wangge_notify_deliveries_waiting",
    "Deliveries not settled yet (pending or being sent), measured every few seconds",
    ["service"],
)
DELIVERIES_FAILED = Gauge(
    "wangge_notify_deliveries_failed",
    "Failed deliveries no operator has resent yet",
    ["service"],
)
QUIET_HOURS_HELD = Counter(
    "wangge_notify_quiet_hours_held_total",
    "Replies put back until the street's quiet hours end, by kind",
    ["service", "kind"],
)
SURVEY_ANSWERS = Counter(
    "wangge_notify_survey_answers_total",
    "Survey answers counted, by channel and verdict",
    ["service", "channel", "verdict"],
)
RESIDENT_LOOKUPS_REFUSED = Counter(
    "wangge_notify_resident_lookups_refused_total",
    "Residents' look-ups refused: not_found (wrong phone or case) or throttled (too many failures)",
    ["service", "reason"],
)
RESIDENT_CODES = Counter(
    "wangge_notify_resident_codes_total",
    "Residents' one-time SMS codes: sent, unsent (gateway down), wrong, throttled, proven (a session opened)",
    ["service", "outcome"],
)


def count_delivery(channel: str, kind: str, state: str) -> None:
    """One delivery reached `state`."""
    DELIVERIES.labels(SERVICE, channel, kind, state).inc()

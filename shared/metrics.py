"""The Prometheus metrics every service exposes on /metrics (one registry per process)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_CONSUMED = Counter(
    "wangge_messages_consumed_total", "Messages taken from Kafka and handled", ["service", "topic", "type"]
)
MESSAGES_PRODUCED = Counter(
    "wangge_messages_produced_total", "Messages acknowledged by Kafka", ["service", "topic", "type"]
)
MESSAGES_REJECTED = Counter(
    "wangge_messages_rejected_total",
    "Inbound messages sent to a rejected/dead-letter topic",
    ["service", "topic", "reason"],
)
HANDLER_SECONDS = Histogram(
    "wangge_handler_seconds",
    "Time to handle one message, effect committed",
    ["service", "type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
HANDLER_RETRIES = Counter(
    "wangge_handler_retries_total", "Handler attempts retried after a transient failure", ["service", "type"]
)
OUTBOX_BACKLOG = Gauge("wangge_outbox_backlog", "Outbox rows not yet relayed to Kafka", ["service"])
OUTBOX_RELAYED = Counter("wangge_outbox_relayed_total", "Outbox rows relayed to Kafka", ["service"])
CONSUMER_LAG = Gauge(
    "wangge_consumer_lag", "Messages behind the end of the partition", ["service", "group", "topic", "partition"]
)
CONSUMER_STALLED_SECONDS = Gauge(
    "wangge_consumer_stalled_seconds",
    "Seconds since the consumer last made progress on a partition that has lag (0 when caught up)",
    ["service", "group", "topic", "partition"],
)
REJECTIONS_DEGRADED = Counter(
    "wangge_rejections_degraded_total",
    "Rejections Kafka refused in full: sent minimal (no original), or lost (only logged)",
    ["service", "topic", "outcome"],
)
OUTBOX_SET_ASIDE = Counter(
    "wangge_outbox_set_aside_total",
    "Outbox rows Kafka can never take (too big, invalid topic, refused) moved to outbox_failed",
    ["service", "reason"],
)

# Every record a process sends is signed and every one it handles checked (shared/signing.py): the most CPU a record
# costs a process after the Kafka client itself, so bench.floor counts them into the least a case costs.
SIGNATURES = Counter(
    "wangge_signatures_total",
    "Ed25519 signatures made on records sent ('signed') and checked on records handled ('checked'); records sent "
    "under a batch's signature ('placed': hashed into its tree) and handled by their path to it ('proved')",
    ["op"],
)
LOOP_RESTARTS = Counter(
    "wangge_loop_restarts_total",
    "Loops (consumers, the outbox relay…) restarted in-process: 'died' (an error ended it) or 'stalled' (the watchdog "
    "tore it down: lag without progress, or no turn, while Kafka and PostgreSQL answered)",
    ["service", "loop", "why"],
)
TOPIC_TRIMS = Counter(
    "wangge_topic_trims_total",
    "Passes cutting a personal-data topic below its reader's commit (shared/trim.py): 'cut' (records deleted), "
    "'idle' (nothing new to cut) or 'failed'",
    ["service", "topic", "outcome"],
)
# shared/claims.py: processed_events rows deleted once safely past any redelivery (the rule is in that module).
CLAIMS_PRUNED = Counter("wangge_claims_pruned_total", "Claims (processed_events rows) pruned as past any redelivery",
                        ["service"])

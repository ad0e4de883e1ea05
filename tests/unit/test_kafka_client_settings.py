"""The Kafka clients' settings (shared/kafka.py): an idle member's fetch is parked long (few requests while nothing
happens) but never longer than its lag interval (its lag request waits behind the fetch on the same connection, and
the watchdog reads an unanswered lag request as a wedged client)."""
from __future__ import annotations

from shared.kafka import FETCH_MAX_WAIT_MS, FETCH_MIN_BYTES, PRODUCER_LINGER_MS, fetch_max_wait_ms


def test_a_record_answers_a_parked_fetch_at_once_and_a_relay_turn_does_not_linger():
    assert FETCH_MIN_BYTES == 1
    assert PRODUCER_LINGER_MS == 0


def test_with_the_default_lag_interval_an_idle_fetch_is_parked_seconds_not_half_a_second():
    assert fetch_max_wait_ms(5.0) == FETCH_MAX_WAIT_MS >= 2000


def test_a_fetch_is_never_parked_longer_than_the_lag_interval():
    assert fetch_max_wait_ms(0.5) == 500
    assert fetch_max_wait_ms(1.2) == 1200
    assert fetch_max_wait_ms(0.01) == 100  # and never so short that the member spins

"""The watchdog's limit (Settings.watchdog_limit): by default it rebuilds at the stall limit that makes /readyz answer
503; an operator may give it longer, so that a stall is seen (and alerted on) before anything is torn down."""
from __future__ import annotations

from shared.runtime import process_watchdog
from shared.settings import Settings


def test_by_default_the_watchdog_acts_at_the_stall_limit():
    settings = Settings(consumer_stall_seconds=42)
    assert settings.watchdog_limit() == 42
    assert process_watchdog("x", settings, "postgresql://nowhere/x").stall_seconds == 42


def test_a_longer_watchdog_limit_is_its_own_and_does_not_move_the_stall_limit():
    settings = Settings(consumer_stall_seconds=1.5, watchdog_stall_seconds=120, consumer_lag_interval_seconds=0.2)
    dog = process_watchdog("x", settings, "postgresql://nowhere/x")
    assert (dog.stall_seconds, settings.consumer_stall_seconds) == (120, 1.5)
    assert dog.interval == 0.2  # it still looks as often as lag is measured

"""The deadline poller: a background loop that fires due deadlines from PostgreSQL."""
from __future__ import annotations

import asyncio
import logging
import time

from services.supervision.adapters.clock_store import CLAIM_BATCH
from services.supervision.handlers import DeadlineHandler
from shared.errors import Backoff, describe, is_transient
from shared.watchdog import Heartbeat

log = logging.getLogger(__name__)

# The shortest nap between two polls: deadlines due within it are taken together, in one transaction.
MIN_WAIT_SECONDS = 0.05


def deadline_loop(handler: DeadlineHandler, poll_seconds: float, backoff_cap: float = 30.0,
                  gauge_seconds: float = 10.0, heartbeat: Heartbeat | None = None):
    """A worker for ServiceRuntime.worker: fire what is due, then sleep until the next deadline in the index
    (at most `poll_seconds`, at least MIN_WAIT_SECONDS), draining full batches at once.

    A deadline therefore fires within MIN_WAIT_SECONDS of its time, however many clocks run, without polling
    PostgreSQL every few milliseconds. The gauges (counts over every running clock) are refreshed every
    `gauge_seconds`, not on every poll. An outage (PostgreSQL or Kafka away) is waited out with capped,
    jittered backoff; one clock that cannot be fired is marked faulted by the handler and never stops the
    loop. Anything else is a bug: it is raised, and the runtime logs it and restarts the loop.
    """

    async def run() -> None:
        backoff = Backoff(base=max(poll_seconds, 0.1), cap=backoff_cap)
        gauges_at = 0.0
        while True:
            if heartbeat is not None:
                heartbeat.beat()
            try:
                while await handler.fire_due() >= CLAIM_BATCH:
                    pass  # a backlog (after an outage): keep going before sleeping
                if time.monotonic() >= gauges_at:
                    await handler.refresh_gauges()
                    gauges_at = time.monotonic() + gauge_seconds
                wait = await handler.seconds_until_next(poll_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — classified
                if not is_transient(exc):
                    raise
                # Nothing was marked: the same deadlines are claimed again on the next poll.
                log.warning("deadline poll failed (%s); retrying", describe(exc))
                await backoff.wait()
                continue
            backoff.reset()
            await asyncio.sleep(max(MIN_WAIT_SECONDS, wait))

    return run

"""The deadline poller: a background loop that fires due deadlines from PostgreSQL."""
from __future__ import annotations

import asyncio
import logging

from services.supervision.adapters.clock_store import CLAIM_BATCH
from services.supervision.handlers import DeadlineHandler
from shared.errors import Backoff, describe, is_transient

log = logging.getLogger(__name__)


def deadline_loop(handler: DeadlineHandler, poll_seconds: float, backoff_cap: float = 30.0):
    """A worker for ServiceRuntime.worker: poll every `poll_seconds`, draining full batches at once.

    An outage (PostgreSQL or Kafka away) is waited out with capped, jittered backoff; one clock that
    cannot be fired is marked faulted by the handler and never stops the loop. Anything else is a bug:
    it is raised, and the runtime logs it and restarts the loop.
    """

    async def run() -> None:
        backoff = Backoff(base=max(poll_seconds, 0.1), cap=backoff_cap)
        while True:
            try:
                while await handler.fire_due() >= CLAIM_BATCH:
                    pass  # a backlog (after an outage): keep going before sleeping
                await handler.refresh_gauges()
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
            await asyncio.sleep(poll_seconds)

    return run

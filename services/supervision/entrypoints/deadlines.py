"""The deadline poller: a background loop that fires due deadlines from PostgreSQL."""
from __future__ import annotations

import asyncio
import logging

from services.supervision.adapters.clock_store import CLAIM_BATCH
from services.supervision.handlers import DeadlineHandler
from shared.db import TRANSIENT_DB_ERRORS
from shared.kafka import TRANSIENT_KAFKA_ERRORS

log = logging.getLogger(__name__)


def deadline_loop(handler: DeadlineHandler, poll_seconds: float):
    """A worker for ServiceRuntime.worker: poll every `poll_seconds`, draining full batches at once."""

    async def run() -> None:
        while True:
            try:
                while await handler.fire_due() >= CLAIM_BATCH:
                    pass  # a backlog (after an outage): keep going before sleeping
                await handler.refresh_gauges()
            except (*TRANSIENT_DB_ERRORS, *TRANSIENT_KAFKA_ERRORS) as exc:
                # Nothing was marked: the same deadlines are claimed again on the next poll.
                log.warning("deadline poll failed (%s); retrying", exc)
            await asyncio.sleep(poll_seconds)

    return run

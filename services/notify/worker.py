"""The delivery worker: sends pending deliveries through their channel and settles them.

Woken by NOTIFY when a delivery is inserted, and polling as a fallback (and for retries that
come due). Any number of instances may run: rows are taken with FOR UPDATE SKIP LOCKED.
"""
from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AsyncExitStack

import asyncpg

from shared.db import TRANSIENT_DB_ERRORS
from shared.runtime import ServiceRuntime

from services.notify.adapters import repository
from services.notify.adapters.channels import Channel
from services.notify.domain.delivery import AttemptResult, Message, Outcome, Transition, after_attempt
from services.notify.domain.replies import mask_address
from services.notify.handlers import emit_reply
from services.notify.metrics import DELIVERY_ATTEMPTS, DELIVERY_SECONDS, SERVICE, count_delivery

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5


class DeliveryWorker:
    """Runs until cancelled: take due deliveries, send them concurrently, record each outcome."""

    def __init__(self, runtime: ServiceRuntime, channels: list[Channel], poll_seconds: float = POLL_SECONDS):
        self._runtime = runtime
        self._channels = {channel.name: channel for channel in channels}
        self._poll = poll_seconds
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """The worker loop (registered with runtime.worker); survives database outages by retrying."""
        async with AsyncExitStack() as stack:
            for channel in self._channels.values():
                await stack.enter_async_context(channel)
            while True:
                try:
                    await self._listen_and_deliver()
                except asyncio.CancelledError:
                    raise
                except TRANSIENT_DB_ERRORS as exc:
                    log.warning("delivery worker interrupted (%s); retrying", exc)
                    await asyncio.sleep(1)

    async def _listen_and_deliver(self) -> None:
        channel = f"{self._runtime.schema}_deliveries"
        async with self._runtime.pool.acquire() as listener:
            await listener.add_listener(channel, self._on_notify)
            try:
                while True:
                    self._wake.clear()
                    handled = await self.deliver_due()
                    if handled < repository.DUE_BATCH:
                        try:
                            await asyncio.wait_for(self._wake.wait(), self._poll)
                        except asyncio.TimeoutError:
                            pass
            finally:
                await listener.remove_listener(channel, self._on_notify)

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def deliver_due(self) -> int:
        """One batch in one transaction: lock due rows, send them, store outcomes and replies; returns how many."""
        settled: list[tuple[asyncpg.Record, Transition]] = []
        async with self._runtime.uow() as uow:
            rows = await repository.lock_due(uow.conn)
            if not rows:
                return 0
            # Sent concurrently so the transaction (and its row locks) lasts about one gateway timeout.
            results = await asyncio.gather(*(self._attempt(row) for row in rows))
            for row, result in zip(rows, results):
                transition = after_attempt(row["attempts"], result)
                await repository.record_attempt(uow.conn, row["id"], transition)
                if transition.final:
                    emit_reply(
                        uow, self._runtime.topics.replies, case_id=row["case_id"], case_no=row["case_no"],
                        kind=row["kind"], channel=row["channel"], to=row["to_phone"], text=row["text"],
                        state=transition.state, delivery_id=row["id"], detail=transition.error,
                    )
                settled.append((row, transition))
            # A crash (or lost connection) between the POSTs above and this commit leaves the rows
            # pending: they are sent again with the same ref (the delivery id), which the gateway
            # de-duplicates, so the resident still gets one SMS.
            await uow.commit()
        for row, transition in settled:
            self._report(row, transition)
        return len(rows)

    async def _attempt(self, row: asyncpg.Record) -> AttemptResult:
        channel = self._channels.get(row["channel"])
        if channel is None:
            return AttemptResult(Outcome.REFUSED, f"no {row['channel']!r} channel configured")
        started = time.perf_counter()
        try:
            result = await channel.send(Message(ref=row["id"], to=row["to_phone"], text=row["text"]))
        except Exception as exc:  # noqa: BLE001 — a channel bug must not stall every other delivery
            log.exception("channel %s failed on delivery %s", channel.name, row["id"])
            result = AttemptResult(Outcome.UNAVAILABLE, f"channel error: {type(exc).__name__}")
        DELIVERY_SECONDS.labels(SERVICE, channel.name).observe(time.perf_counter() - started)
        DELIVERY_ATTEMPTS.labels(SERVICE, channel.name, result.outcome.value).inc()
        return result

    def _report(self, row: asyncpg.Record, transition: Transition) -> None:
        to = mask_address(row["to_phone"])
        if transition.final:
            count_delivery(row["channel"], row["kind"], transition.state)
            log.info("case %s: %s %s to %s after %d attempt(s)%s", row["case_no"], row["kind"], transition.state,
                     to, transition.attempts, f" ({transition.error})" if transition.error else "")
        else:
            log.warning("case %s: %s to %s not delivered (%s); retry %d in %.0f s", row["case_no"], row["kind"], to,
                        transition.error, transition.attempts + 1, transition.retry_in or 0)

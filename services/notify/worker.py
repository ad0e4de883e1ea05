"""The delivery worker: sends due deliveries through their channel and settles them.

No database transaction is held open during a gateway call: rows are claimed (FOR UPDATE SKIP
LOCKED) and marked `sending` with a lease in one short transaction, sent, and each outcome is
recorded in another. Any number of instances may run. A row whose lease ran out (its worker died
mid-send) is taken again, marked uncertain, and re-sent under the same idempotency key.

Woken by NOTIFY when a delivery is inserted, and polling as a fallback (and for retries that
come due).

A burst of acknowledgements is its hot path, so claiming, sending and recording overlap instead of taking turns:
rows are claimed while fewer than twice the sends allowed in flight are unsettled; each claimed row goes out as soon
as one of the `concurrency` sends is free (the SMS gateway's kept-alive connections, one HTTP client per channel for
the worker's life: a send never waits inside the client's pool, nor opens a connection it then throws away); and the
outcomes that came in together are recorded together — quiet-hour deferrals and expiries in the claim's
transaction, results in one statement per round of the recorder. A batch waiting for its slowest send before the
next claim (the loop before) left most connections idle for most of each round.

It ends with its runtime: a cancellation is never taken for an outage to retry (a clean-up failing while the task
is being cancelled, or Python 3.11's wait_for returning a result that arrived with the cancellation, kept a worker
running after its test had stopped notify, logging "pool is closed; retrying" every second), and a pool that its
runtime closed ends the loop instead of being retried.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import asyncpg

from shared.clock import Clock
from shared.contracts.cases import CasePersonalDataErased
from shared.errors import describe, is_transient
from shared.personal_data import mask_address
from shared.runtime import ServiceRuntime
from shared.street_config import StreetConfig
from shared.street_rules import StreetRules
from shared.watchdog import Heartbeat

from services.notify.adapters import repository
from services.notify.adapters.channels import GATEWAY_CONNECTIONS, Channel
from services.notify.domain.delivery import (
    AttemptResult,
    Message,
    Outcome,
    RetryPolicy,
    Transition,
    after_attempt,
    expired,
)
from services.notify.domain.quiet import hold_until
from services.notify.domain.replies import CONTACT_ERASED, STAFF_KINDS, erased_fields
from services.notify.handlers import SOURCE, emit_reply
from services.notify.metrics import (
    DELIVERIES_FAILED,
    DELIVERIES_WAITING,
    DELIVERY_ATTEMPTS,
    DELIVERY_SECONDS,
    QUIET_HOURS_HELD,
    SERVICE,
    count_delivery,
)

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
BACKLOG_EVERY_SECONDS = 10.0


def _being_cancelled() -> bool:
    """Whether the running task was asked to stop: an error raised by a clean-up then is no outage to retry."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _pool_closed(runtime: ServiceRuntime) -> bool:
    """Whether the runtime closed (or abandoned) its pool: the service stopped; nothing will answer again."""
    pool = getattr(runtime, "pool", None)
    return pool is not None and pool.is_closing()


@dataclass(frozen=True)
class Claimed:
    """One claim: how many rows it took (sent, deferred or expired), and those to send under its lease token."""

    token: uuid.UUID
    taken: int
    to_send: list[asyncpg.Record] = field(default_factory=list)


@dataclass(frozen=True)
class Attempted:
    """A claimed row, the lease token it was claimed under, and what its send returned."""

    row: asyncpg.Record
    token: uuid.UUID
    result: AttemptResult


async def _until(event: asyncio.Event, also: asyncio.Future | None = None, timeout: float | None = None) -> None:
    """Until `event` is set, `also` is done, or `timeout`. Not asyncio.wait_for: on Python 3.11 it returns the
    event's result when the wake-up and a cancellation arrive together, and the cancelled worker went on."""
    waiting = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait([waiting, *([also] if also is not None else [])], timeout=timeout,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()


class DeliveryWorker:
    """Runs until cancelled: claim due deliveries, send them concurrently, record each outcome."""

    def __init__(self, runtime: ServiceRuntime, channels: list[Channel], policy: RetryPolicy = RetryPolicy(),
                 poll_seconds: float = POLL_SECONDS, street_rules: StreetRules | None = None,
                 concurrency: int = GATEWAY_CONNECTIONS, clock: Clock | None = None):
        self._runtime = runtime
        # notify's clock: what is due, in the quiet hours or past its useful life is so at its moment
        self._clock = clock or Clock()
        # The quiet hours in force (the street's configuration learnt from supervision).
        self._street_rules = street_rules or StreetRules(StreetConfig())
        self._channels = {channel.name: channel for channel in channels}
        self._policy = policy
        self._poll = poll_seconds
        self._wake = asyncio.Event()
        # Sends in flight at once, over every channel: the SMS gateway's kept-alive connections.
        self._sending = asyncio.Semaphore(concurrency)
        # Rows claimed and not yet recorded: twice the sends in flight, so a send that ends finds the next row
        # claimed already, and a claimed row waits for a free send no longer than one send (well inside its lease).
        self._window = 2 * concurrency
        # A claim is made once this many rows fit in the window: a burst is claimed a few dozen at a time, not a row
        # per send that ends.
        self._claim_at = max(1, min(repository.DUE_BATCH, self._window // 2))
        self._unsettled = 0
        self._recorded = asyncio.Event()
        self._backlog_at = 0.0
        self.heartbeat = Heartbeat()  # every turn: the watchdog restarts a worker that stops turning

    async def run(self) -> None:
        """The worker loop (registered with runtime.worker); survives database outages by retrying."""
        async with AsyncExitStack() as stack:
            for channel in self._channels.values():
                await stack.enter_async_context(channel)
            while True:
                self.heartbeat.beat()
                try:
                    await self._listen_and_deliver()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 — classified
                    if _being_cancelled():
                        raise asyncio.CancelledError() from exc  # stopping: a clean-up's error is no outage
                    if _pool_closed(self._runtime):
                        log.info("delivery worker: notify's pool is closed (the service stopped); ending")
                        return
                    if not is_transient(exc):
                        raise
                    log.warning("delivery worker interrupted (%s); retrying", describe(exc))
                    await asyncio.sleep(1)

    async def _listen_and_deliver(self) -> None:
        channel = f"{self._runtime.schema}_deliveries"
        async with self._runtime.pool.acquire() as listener:
            await listener.add_listener(channel, self._on_notify)
            try:
                await self._deliver_continuously()
            finally:
                await listener.remove_listener(channel, self._on_notify)

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _deliver_continuously(self) -> None:
        """Claim while the window has room, send each claimed row as soon as a send is free, record the outcomes as
        they come in. An error of the recorder ends it (the run loop retries); the sends then cut off leave their
        rows `sending` until the lease runs out, to be sent again under the same key."""
        self._unsettled = 0
        attempted: asyncio.Queue[Attempted] = asyncio.Queue()
        recorder = asyncio.create_task(self._record_as_they_come(attempted))
        sends: set[asyncio.Task[None]] = set()
        try:
            while True:
                self.heartbeat.beat()
                if recorder.done():
                    recorder.result()  # raises what ended it
                    return
                self._recorded.clear()
                room = self._window - self._unsettled
                if room < self._claim_at:
                    await _until(self._recorded, recorder, self._poll)  # room is made as outcomes are recorded
                    continue
                self._wake.clear()
                limit = min(room, repository.DUE_BATCH)
                claimed = await self.claim(limit)
                self._unsettled += len(claimed.to_send)
                for row in claimed.to_send:
                    send = asyncio.create_task(self._send_claimed(row, claimed.token, attempted))
                    sends.add(send)
                    send.add_done_callback(sends.discard)
                await self._measure_backlog()
                if claimed.taken < limit:  # nothing more due now: until a delivery is inserted, or the poll
                    await _until(self._wake, recorder, self._poll)
        finally:
            for task in (*sends, recorder):
                task.cancel()
            await asyncio.wait([*sends, recorder], timeout=10)

    async def claim(self, limit: int = repository.DUE_BATCH) -> Claimed:
        """Claim due rows in one short transaction: those in the quiet hours go back until they end, those past
        their useful life are settled as failed, the rest are returned to send."""
        token = uuid.uuid4()
        expired_rows: list[tuple[asyncpg.Record, Transition]] = []
        async with self._runtime.uow() as uow:
            rows = await repository.claim_due(uow.conn, lease_seconds=self._policy.lease_seconds, token=token,
                                              at=self._clock.now(), limit=limit)
            if not rows:
                return Claimed(token, 0)
            quiet = (await self._street_rules.current(uow.conn)).quiet_hours
            moment = self._clock.now()
            to_send, deferred = [], []
            for row in rows:
                until = hold_until(kind=row["kind"], channel=row["channel"], moment=moment, quiet=quiet)
                if until is not None:
                    deferred.append((row, until))  # 免打扰: back to pending, untried, until the quiet hours end
                elif expired(row["expires_at"], moment):
                    # Never sent in its useful life (notify or the gateway was down that long): settled
                    # as failed, visible to operators who may still resend it.
                    error = "expired before it could be delivered"
                    if row["uncertain_since"] is not None:
                        error += " (an earlier attempt may have reached the gateway)"
                    expired_rows.append((row, Transition("failed", row["attempts"], error=error)))
                else:
                    to_send.append(row)
            await repository.defer_all(uow.conn, token, [(str(row["id"]), until) for row, until in deferred])
            await repository.record_outcomes(uow.conn, [(str(row["id"]), token, t) for row, t in expired_rows])
            for row, transition in expired_rows:
                self._emit(uow, row, transition)
            await uow.commit()
        for row, until in deferred:
            QUIET_HOURS_HELD.labels(SERVICE, row["kind"]).inc()
            log.info("case %s: %s held for the quiet hours until %s", row["case_no"], row["kind"], until.isoformat())
        for row, _transition in expired_rows:
            self._report(row, Transition("failed", row["attempts"], error="expired"))
        for row in to_send:
            if row["was"] == "sending":
                log.warning("case %s: %s delivery %s was being sent by a worker that stopped; it may have reached "
                            "the gateway: sending again with the same idempotency key", row["case_no"], row["kind"],
                            row["id"])
        return Claimed(token, len(rows), to_send)

    async def _send_claimed(self, row: asyncpg.Record, token: uuid.UUID, attempted: asyncio.Queue[Attempted]) -> None:
        attempted.put_nowait(Attempted(row, token, await self._attempt(row)))

    async def _record_as_they_come(self, attempted: asyncio.Queue[Attempted]) -> None:
        """Record every outcome that has come in, in one transaction, and again: while one round is being written,
        the next round's outcomes gather (one transaction per reply at a trickle, a few dozen per one in a burst)."""
        while True:
            done = [await attempted.get()]
            while not attempted.empty():
                done.append(attempted.get_nowait())
            await self.record(done)
            self._unsettled -= len(done)
            self._recorded.set()

    async def record(self, done: list[Attempted]) -> None:
        """The outcomes in one new transaction; reply.issued for those settled. A crash before this commit leaves the
        rows `sending` until their lease runs out: then they are re-sent with the same key."""
        settled: list[tuple[asyncpg.Record, Transition]] = []
        moment = self._clock.now()
        transitions = [after_attempt(a.row["attempts"], a.result, now=moment, expiry=a.row["expires_at"],
                                     policy=self._policy) for a in done]
        async with self._runtime.uow() as uow:
            held = await repository.record_outcomes(uow.conn, [(str(a.row["id"]), a.token, transition)
                                                               for a, transition in zip(done, transitions)])
            for a, transition in zip(done, transitions):
                row = a.row
                if str(row["id"]) not in held:
                    log.warning("delivery %s was taken over by another worker after our lease ran out; its "
                                "outcome is recorded there", row["id"])
                    continue
                if transition.final:
                    self._emit(uow, row, transition)
                settled.append((row, transition))
            await uow.commit()
        for row, transition in settled:
            self._report(row, transition)

    def _emit(self, uow, row: asyncpg.Record, transition: Transition) -> None:
        if row["kind"] in STAFF_KINDS or row["channel"] == "webhook":
            # A message to the street's staff, or an integrator's copy: not a reply to a resident, not for
            # wangge.replies (the hotline bridge calls residents back from it).
            return
        emit_reply(
            uow, self._runtime.topics.replies, case_id=row["case_id"], case_no=row["case_no"], kind=row["kind"],
            channel=row["channel"], to=row["to_phone"], text=row["text"], state=transition.state,
            delivery_id=row["id"], detail=transition.error, event_id=row["source_event_id"],
        )

    async def _attempt(self, row: asyncpg.Record) -> AttemptResult:
        channel = self._channels.get(row["channel"])
        if channel is None:
            return AttemptResult(Outcome.REFUSED, f"no {row['channel']!r} channel configured")
        async with self._sending:
            return await self._send(channel, row)

    async def _send(self, channel: Channel, row: asyncpg.Record) -> AttemptResult:
        started = time.perf_counter()
        try:
            result = await channel.send(Message(ref=row["id"], to=row["to_phone"], text=row["text"],
                                                   case_no=row["case_no"], kind=row["kind"]))
        except Exception as exc:  # noqa: BLE001 — a channel bug must not stall every other delivery
            log.exception("channel %s failed on delivery %s", channel.name, row["id"])
            result = AttemptResult(Outcome.UNAVAILABLE, f"channel error: {type(exc).__name__}")
        DELIVERY_SECONDS.labels(SERVICE, channel.name).observe(time.perf_counter() - started)
        DELIVERY_ATTEMPTS.labels(SERVICE, channel.name, result.outcome.value).inc()
        return result

    async def _measure_backlog(self) -> None:
        """Refresh the waiting/failed gauges now and then (one cheap query, not every loop)."""
        if time.monotonic() - self._backlog_at < BACKLOG_EVERY_SECONDS:
            return
        self._backlog_at = time.monotonic()
        backlog = await repository.delivery_backlog(self._runtime.pool)
        DELIVERIES_WAITING.labels(SERVICE).set(backlog["waiting"])
        DELIVERIES_FAILED.labels(SERVICE).set(backlog["failed"])

    def _report(self, row: asyncpg.Record, transition: Transition) -> None:
        to = mask_address(row["to_phone"])
        if transition.final:
            count_delivery(row["channel"], row["kind"], transition.state)
            log.info("case %s: %s %s to %s after %d attempt(s)%s", row["case_no"], row["kind"], transition.state,
                     to, transition.attempts, f" ({transition.error})" if transition.error else "")
        else:
            log.warning("case %s: %s to %s not delivered (%s); retry %d in %.1f s", row["case_no"], row["kind"], to,
                        transition.error, transition.attempts + 1, transition.retry_in or 0)


class ErasureWorker:
    """Erases the residents' names and phone numbers of cases whose survey window closed at least
    `erase_after_days` ago (DESIGN "Personal data"), records each erasure and announces it on
    wangge.cases as case.personal-data-erased (no personal data in it).

    Each case in its own short transaction, its schedule row taken FOR UPDATE SKIP LOCKED and its
    deliveries locked, so any number of notify instances may run and a delivery worker (which takes
    rows SKIP LOCKED too) never sends to an address being erased.
    """

    def __init__(self, runtime: ServiceRuntime, *, after_days: float, poll_seconds: float,
                 clock: Clock | None = None):
        self._runtime = runtime
        self._clock = clock or Clock()  # notify's: the days after the survey window are counted to its moment
        self._after_days = after_days
        self._poll = poll_seconds

    async def run(self) -> None:
        """The worker loop (registered with runtime.worker); survives database outages by retrying."""
        while True:
            try:
                while await self.erase_due() == repository.DUE_BATCH:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — classified
                if _being_cancelled():
                    raise asyncio.CancelledError() from exc  # stopping: a clean-up's error is no outage
                if _pool_closed(self._runtime):
                    log.info("erasure worker: notify's pool is closed (the service stopped); ending")
                    return
                if not is_transient(exc):
                    raise
                log.warning("erasure worker interrupted (%s); retrying", describe(exc))
            await asyncio.sleep(self._poll)

    async def erase_due(self) -> int:
        """Erase the cases due now (up to a batch); returns how many were done."""
        done, later = 0, []
        while done + len(later) < repository.DUE_BATCH:
            async with self._runtime.uow() as uow:
                due = await repository.claim_erasures(uow.conn, after_days=self._after_days, at=self._clock.now(),
                                                         skip=later, limit=1)
                if not due:
                    break
                erased = await self._erase(uow, due[0]["case_id"], due[0]["case_no"])
                if erased is None:
                    later.append(due[0]["case_id"])  # a reply is being sent right now: next round
                    continue
                await uow.commit()
            done += 1
            for case_no, fields in erased:
                log.info("case %s: residents' personal data erased (%s)", case_no, ", ".join(fields))
        return done

    async def _erase(self, uow, case_id: str, case_no: str) -> list[tuple[str, list[str]]] | None:
        """Erase in this unit of work; (case_no, fields) per case erased, or None to retry later."""
        conn = uow.conn
        await repository.lock_residents(conn, case_id)
        held = await repository.personal_data_of(conn, case_id)
        if any(d["state"] == "sending" for d in held["deliveries"]):
            return None
        at = self._clock.now()
        case_nos = {case_id: case_no, **held["follower_cases"]}
        erased: list[tuple[str, list[str]]] = []
        for cid in held["case_ids"]:
            contact = held["contacts"].get(cid)
            # The residents' data only: a staff alert's address (the leader on duty's) is not theirs to erase.
            deliveries = [d for d in held["deliveries"] if d["case_id"] == cid and d["kind"] not in STAFF_KINDS]
            to_mask = [d for d in deliveries if d["to_phone"] and "*" not in d["to_phone"]]
            fields = erased_fields(
                name=bool(contact and contact["name"]), phone=contact is not None,
                follower_phones=cid == case_id and bool(held["follower_cases"]),
                delivery_addresses=bool(to_mask),
            )
            for d in deliveries:
                masked = mask_address(d["to_phone"]) if d["to_phone"] else ""
                waiting = d["state"] in ("pending", "awaiting_contact")
                if masked == d["to_phone"] and not waiting:
                    continue
                state, error = (("failed", CONTACT_ERASED) if waiting else (None, None))
                await repository.erase_delivery(conn, d["id"], to=masked, state=state, error=error)
                if waiting:
                    emit_reply(uow, self._runtime.topics.replies, case_id=cid, case_no=d["case_no"], kind=d["kind"],
                               channel=d["channel"], to=masked, text=d["text"], state="failed", delivery_id=d["id"],
                               detail=CONTACT_ERASED, event_id=d["source_event_id"])
            if fields:
                event = CasePersonalDataErased(case_no=case_nos.get(cid, case_no), erased_at=at, fields=fields)
                envelope = event.envelope(source=SOURCE, case_id=cid, occurred_at=at)
                await repository.record_erasure(conn, case_id=cid, case_no=event.case_no, erased_at=at, what=fields,
                                                event_id=envelope.id)
                uow.emit(self._runtime.topics.cases, envelope)
                erased.append((event.case_no, fields))
        await repository.erase_contacts(conn, held["case_ids"])
        await repository.forget_lookups(conn, list(case_nos.values()))
        await repository.erasure_done(conn, case_id)
        return erased

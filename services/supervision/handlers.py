"""Supervision's handlers beyond the case log (case_log.py) and the command center's commands (commands.py): owners'
updates and the deadlines that come due. Every event they decide goes through the case log's emit: folded at once, queued for
wangge.cases in the same transaction.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from pydantic import ValidationError

from services.supervision import metrics
from services.supervision.adapters import case_store, clock_store, fold_store, held_store
from services.supervision.case_log import CaseLog
from services.supervision.domain.decisions import Allowed, CaseSnapshot, Refused, decide_update, overtook_dispatch
from services.supervision.domain.notices import escalated_text, escalation_reason, overdue_text, reminder_text
from services.supervision.domain.policy import StreetPolicy
from services.supervision.domain.states import EVENT_TARGETS
from shared.auth import is_signed, update_signer
from shared.contracts import Envelope, EventModel, InvalidMessage, parse_event, registered_types
from shared.contracts import cases as c
from shared.contracts import tasks as t
from shared.contracts.envelope import describe_validation_error
from shared.errors import describe, is_transient
from shared.periodic import every
from shared.kafka import topic_name_problem
from shared.messagebus import Message
from shared.personal_data import mask_personal
from shared.topics import Topics
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

SERVICE = "supervision"
UPDATES_CONSUMER = "supervision:task-updates"
# Owner codes become topic names (wangge.tasks.<owner>): only these characters can.
_TOPIC_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")

UowFactory = Callable[[], UnitOfWork]


@dataclass(frozen=True)
class Outcome:
    """What became of an owner's update or an operator's decision."""

    state: str | None
    event_type: str | None = None
    refused: Refused | None = None
    duplicate: bool = False
    held: bool = False  # came before the case's dispatch: decided when it comes (or refused after the bound)
    due_at: datetime | None = None


class OwnerUpdates:
    """Owners' answers (wangge.task-updates, or POST /api/v1/tasks/{case_no}/updates) become case events."""

    def __init__(self, log_: CaseLog, topics: Topics, uow: UowFactory, *, require_signature: bool = False,
                 production: bool = False, hold_seconds: float = 600.0, hold_per_owner: int = 1000):
        self._log = log_
        self._topics = topics
        self._uow = uow
        self._require_signature = require_signature
        self._production = production
        # How long an update that came before its case's dispatch waits for it before it is refused.
        self.hold_for = timedelta(seconds=hold_seconds)
        # How many of one owner's updates may wait so at once; the next is refused at once (held_store.held_of).
        self.hold_per_owner = hold_per_owner

    async def check_sender(self, uow: UnitOfWork, owner: str, message: Message[Any]) -> None:
        """The update's owner must be the owner whose credential signed it (always in production; else if signed)."""
        record = message.record
        headers = {key: value for key, value in (record.headers or ())} if record is not None else {}
        if not (self._require_signature or is_signed(headers)):
            return
        signer = await update_signer(uow.conn, headers, record.value if record is not None else b"",
                                     production=self._production,
                                     topic=record.topic, key=record.key)
        if isinstance(signer, str):
            raise InvalidMessage(f"update not accepted: {signer}")
        if signer.role != "owner" or signer.owner_code != owner:
            raise InvalidMessage(f"update for owner {owner!r} signed by {signer.actor}: an owner updates only its own tasks")

    async def submit(self, owner: str, case_no: str, body: dict, update_id: str | None) -> Outcome:
        """The same update over HTTP, for the owner the credential names; committed before it returns."""
        update_type = body.get("type")
        model = registered_types().get(update_type) if update_type in t.UPDATE_TYPES else None
        if model is None:
            return Outcome(None, refused=Refused(f"type must be one of {', '.join(t.UPDATE_TYPES)}", 422))
        fields = {k: v for k, v in body.items() if k not in ("type", "id")}
        try:
            update = model.model_validate({**fields, "case_no": case_no, "owner": owner})
        except ValidationError as exc:
            errors = describe_validation_error(exc)
            return Outcome(None, refused=Refused("; ".join(f"{e['field']}: {e['error']}" for e in errors[:5]), 422))
        async with self._uow() as uow:
            # An id the caller chose is theirs for this case only: the same key on another case, or from
            # another owner, is a different update, not a "duplicate" of somebody else's.
            scoped = f"{owner}/{case_no}/{update_id}" if update_id else str(uuid.uuid4())
            outcome = await self.apply(uow, update, update_id=scoped, case_id=None)
            await uow.commit()
        return outcome

    async def apply(self, uow: UnitOfWork, update: EventModel, *, update_id: str, case_id: str | None) -> Outcome:
        """Decide and apply one update once (by its id); a refusal is told on the owner's topic."""
        if not await uow.claim(UPDATES_CONSUMER, update_id):
            return Outcome(None, duplicate=True)
        return await self.apply_claimed(uow, update, update_id=update_id, case_id=case_id)

    async def apply_claimed(self, uow: UnitOfWork, update: EventModel, *, update_id: str,
                            case_id: str | None, hold: Envelope | None = None,
                            held_since: datetime | None = None) -> Outcome:
        """Decide and apply one update whose id was claimed (by the bus, or by apply). With `hold` (its envelope, from
        wangge.task-updates): one that may have overtaken its case's dispatch on wangge.cases is held, not refused
        (release_held applies it when the dispatch is folded, expire_held refuses it after the bound)."""
        assert isinstance(update, t.TaskEvent)
        row = await case_store.lock_case(uow.conn, case_id=case_id, case_no=None if case_id else update.case_no)
        case = case_store.snapshot(row)
        decision = decide_update(case, update.owner, update.TYPE, update.case_no, until=getattr(update, "until", None))
        if hold is not None and case_id is not None and overtook_dispatch(case, decision):
            if row is None:
                # No row to lock: the case's advisory lock instead, then read again — a fold that created the row
                # and released the case's held updates meanwhile has committed, one still folding waits for us.
                await held_store.lock_cases(uow.conn, [case_id])
                row = await case_store.lock_case(uow.conn, case_id=case_id)
                case = case_store.snapshot(row)
                decision = decide_update(case, update.owner, update.TYPE, update.case_no,
                                         until=getattr(update, "until", None))
            if overtook_dispatch(case, decision):
                if await held_store.held_of(uow.conn, update.owner) >= self.hold_per_owner:
                    decision = Refused(f"{self.hold_per_owner} updates of owner {update.owner} already wait for "
                                       "cases not yet dispatched; this one is refused — send it again once its "
                                       "case's task has arrived (待派遣案件的暂存更新已达上限，请在收到任务后重发)")
                    uow.after_commit(lambda: metrics.HELD_UPDATES.labels(SERVICE, "over_cap").inc())
                else:
                    await held_store.hold(uow.conn, case_id=case_id, update_id=update_id, owner=update.owner,
                                          envelope=hold.to_json(), at=held_since or self._log.clock.now())
                    uow.after_commit(lambda: metrics.HELD_UPDATES.labels(SERVICE, "held").inc())
                    uow.after_commit(lambda: log.info("update %s (%s) of %s held: its case's dispatch is not folded "
                                                      "yet", update_id, update.TYPE, update.case_no))
                    return Outcome(case.state if case else None, held=True)
        if isinstance(decision, Refused):
            refusal = t.TaskUpdateRefused(case_no=update.case_no, owner=update.owner, update_id=update_id,
                                          update_type=update.TYPE, reason=decision.reason)
            uow.emit(self._topics.tasks(update.owner),
                     refusal.envelope(source=SERVICE, case_id=case.case_id if case else case_id))
            uow.after_commit(lambda: log.info("update %s (%s) of %s refused: %s", update_id, update.TYPE,
                                              update.case_no, decision.reason))
            return Outcome(case.state if case else None, refused=decision)
        assert case is not None and row is not None
        event, due = await self._case_event(uow, decision, update, update_id, case)
        await self._log.emit(uow, event, case.case_id)
        return Outcome(EVENT_TARGETS.get(decision.event_type, case.state), decision.event_type, due_at=due)

    async def release_held(self, uow: UnitOfWork, case_ids: list[str]) -> int:
        """The updates held for these cases, decided now that their dispatch is folded (in the fold's transaction,
        after it; in arrival order). One still overtaking (the case still waits for a dispatch) is held again."""
        await held_store.lock_cases(uow.conn, case_ids)  # after the fold's row locks: the one lock order
        rows = await held_store.take_for_cases(uow.conn, case_ids)
        for row in rows:
            try:
                # Its own savepoint: an update that cannot be applied must not take the dispatch's fold with it.
                async with uow.savepoint():
                    envelope = Envelope.from_json(row["envelope"])
                    outcome = await self.apply_claimed(uow, parse_event(envelope), update_id=row["update_id"],
                                                       case_id=row["case_id"], hold=envelope,
                                                       held_since=row["held_at"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — classified: an outage retries the batch, anything else is logged
                if is_transient(exc):
                    raise
                log.exception("held update %s of case %s could not be applied; dropped", row["update_id"],
                              row["case_id"])
                uow.after_commit(lambda: metrics.HELD_UPDATES.labels(SERVICE, "failed").inc())
                continue
            if not outcome.held:
                uow.after_commit(lambda: metrics.HELD_UPDATES.labels(SERVICE, "released").inc())
        return len(rows)

    async def expire_held(self, limit: int = 100) -> int:
        """Refuse, with the reason they get now, the updates held longer than the bound (their case's dispatch never
        came); one transaction, at most `limit` cases. Returns the updates decided."""
        before = self._log.clock.now() - self.hold_for
        async with self._uow() as uow:
            case_ids = await held_store.expired_cases(uow.conn, before, limit)
            if not case_ids:
                return 0
            await fold_store.lock_cases(uow.conn, case_ids)  # the one lock order: case rows, advisory, held rows
            await held_store.lock_cases(uow.conn, case_ids)
            rows = await held_store.take_expired(uow.conn, case_ids, before)
            for row in rows:
                envelope = Envelope.from_json(row["envelope"])
                await self.apply_claimed(uow, parse_event(envelope), update_id=row["update_id"],
                                         case_id=row["case_id"])
            await uow.commit()
        metrics.HELD_UPDATES.labels(SERVICE, "expired").inc(len(rows))
        return len(rows)

    async def _case_event(self, uow: UnitOfWork, decision: Allowed, update: t.TaskEvent, update_id: str,
                          case: CaseSnapshot) -> tuple[EventModel, datetime | None]:
        common = {"case_no": case.case_no, "owner": update.owner, "update_id": update_id}
        if isinstance(update, t.TaskResumed):  # the one that reads the clock: the time left at suspension
            due = await resumed_due(uow, self._log, case.case_id, case.due_at)
            return c.CaseResumed(**common, by=f"owner:{update.owner}", due_at=due), due
        build = _CASE_EVENTS.get(type(update))
        if build is None:
            raise InvalidMessage(f"{decision.event_type} has no case event")  # UPDATE_RULES and this table agree
        return build(update, common), None


# Owners' words go onto wangge.cases, which is kept for good: a phone number typed into them is masked.
_m = mask_personal
_CASE_EVENTS: dict[type, Callable[[Any, dict[str, Any]], EventModel]] = {
    t.TaskAccepted: lambda u, common: c.CaseSigned(**common),
    t.TaskProgress: lambda u, common: c.CaseProgressReported(**common, note=_m(u.note), media=u.media),
    t.TaskResolved: lambda u, common: c.CaseResolved(**common, result=_m(u.result), media=u.media),
    t.TaskReturned: lambda u, common: c.CaseReturned(**common, reason=_m(u.reason)),
    t.TaskExtensionRequested: lambda u, common: c.CaseExtensionRequested(**common, until=u.until,
                                                                         reason=_m(u.reason)),
    t.TaskExplained: lambda u, common: c.CaseExplained(**common, explanation=_m(u.explanation)),
    t.TaskSuspended: lambda u, common: c.CaseSuspended(**common, reason=_m(u.reason), by=f"owner:{u.owner}"),
}


# ---- the handlers of wangge.task-updates' bus (bootstrap.py registers them by type) --------------------------------

async def apply_updates(messages: list[Message[t.TaskEvent]], uow: UnitOfWork, updates: OwnerUpdates) -> None:
    """Owners' updates from wangge.task-updates (claimed by the bus): each applied, or refused on the owner's topic.
    One at a time: each locks and decides on its case as the one before left it (not the hot path)."""
    for m in messages:
        update = m.event
        case_id = m.case_id  # InvalidMessage if the envelope names no case: the update answers one
        if not set(update.owner) <= _TOPIC_SAFE:
            raise InvalidMessage(f"owner {update.owner!r} cannot be an owner code (letters, digits, . _ - only)")
        await updates.check_sender(uow, update.owner, m)
        await updates.apply_claimed(uow, update, update_id=m.id, case_id=case_id, hold=m.envelope)


async def release_held_updates(messages: list[Message[c.CaseDispatched]], uow: UnitOfWork,
                               updates: OwnerUpdates) -> None:
    """wangge.cases' bus, after the fold of these dispatches (same transaction): the owners' updates that came first."""
    await updates.release_held(uow, list(dict.fromkeys(m.case_id for m in messages)))


def held_updates_loop(updates: OwnerUpdates, poll_seconds: float):
    """A worker for ServiceRuntime.worker: refuse the held updates past the bound, every `poll_seconds`."""
    return every(poll_seconds, updates.expire_held, "expiring held updates", again_from=1)


async def resumed_due(uow: UnitOfWork, case_log: CaseLog, case_id: str, fallback: datetime | None) -> datetime:
    """The deadline of a suspended case resumed now: now plus the time that was left at suspension."""
    clock = await clock_store.running_clock(uow.conn, case_id)
    at = case_log.clock.now()
    if clock is None or clock["state"] != "suspended":
        return fallback or at
    return case_log.resumed(clock, at)[0]


class DeadlineHandler:
    """Fires the deadlines that have come: 催办 at 75%, 超期 + 督办 + escalation at 100%."""

    def __init__(self, log_: CaseLog, topics: Topics, policy: StreetPolicy, uow: UowFactory, pool_of: Callable):
        self._log = log_
        self._topics = topics
        self._uow = uow
        self._pool_of = pool_of
        self._clock = log_.clock  # the case log's: one time for the clocks opened and fired

    @property
    def _policy(self) -> StreetPolicy:
        """The fold's policy: one configuration for clocks opened and fired."""
        return self._log.live.policy

    async def fire_due(self) -> int:
        """Claim one batch of due deadlines (SKIP LOCKED), emit their events, commit; returns clocks handled.

        Each clock is fired in a savepoint of its own: one that cannot be (an owner code that cannot be a
        topic name, a processing error) is marked faulted with the reason, skipped by later polls, and does
        not hold back the others. An outage (shared.errors.is_transient) rolls the whole batch back for the
        next poll: nothing was marked, so each deadline still fires once.
        """
        fired: list[tuple[str, float]] = []
        faulted: list[tuple[clock_store.DueClock, str]] = []
        async with self._uow() as uow:
            await self._log.live.refresh(uow.conn)  # a configuration committed since the last poll
            due = await clock_store.claim_due(uow.conn, self._clock.now())
            for clock in due:
                problem = self._unfireable(clock)
                if problem is None:
                    try:
                        async with uow.savepoint():
                            fired.extend(await self._fire(uow, clock))
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # noqa: BLE001 — one bad clock must not stop the others
                        if is_transient(exc):
                            raise
                        log.exception("deadline of %s (%s) failed", clock.case_no, clock.kind)
                        problem = f"firing failed: {describe(exc)}"
                if problem is not None:
                    await clock_store.mark_faulted(uow.conn, clock.case_id, clock.kind, problem)
                    faulted.append((clock, problem))
            await uow.commit()
        for kind, delay in fired:  # counted only once committed: a rolled-back batch fires again later
            metrics.DEADLINES_FIRED.labels(SERVICE, kind).inc()
            metrics.DEADLINE_DELAY.labels(SERVICE, kind).observe(max(0.0, delay))
        for clock, problem in faulted:
            metrics.DEADLINES_FAULTED.labels(SERVICE, clock.kind).inc()
            log.error("clock of case %s (%s) faulted, skipped from now on: %s", clock.case_no, clock.kind, problem)
        if due:
            log.info("deadlines fired: %s", ", ".join(f"{c.case_no} ({c.kind})" for c in due
                                                      if all(f is not c for f, _ in faulted)))
        return len(due)

    def _unfireable(self, clock: clock_store.DueClock) -> str | None:
        """Why this clock's notices cannot be sent at all (its owner's task topic cannot exist), or None."""
        problem = topic_name_problem(self._topics.tasks(clock.owner))
        return f"owner {clock.owner[:60]!r} cannot be an owner code: {problem}" if problem else None

    async def _fire(self, uow: UnitOfWork, clock: clock_store.DueClock) -> list[tuple[str, float]]:
        fired: list[tuple[str, float]] = []
        if clock.warning_due:
            await self._emit_warning(uow, clock)
            await clock_store.mark_warned(uow.conn, clock.case_id, clock.kind, at=self._clock.now())
            fired.append(("warning", (self._clock.now() - clock.warn_at).total_seconds()))
        if clock.overdue_due:
            level = self._level(clock)
            await self._emit_overdue(uow, clock, level)
            await clock_store.mark_overdue(uow.conn, clock.case_id, level, clock.kind, self._next_escalation(level),
                                          at=self._clock.now())
            fired.append(("overdue", (self._clock.now() - clock.due_at).total_seconds()))
        elif clock.escalation_due:
            # Still overdue an interval later: one more level up the ladder, each level once.
            level = self._policy.next_level(clock.escalation_level)
            if level is not None:
                await self._emit_escalation(uow, clock, level)
                at = self._clock.now()
                fired.append(("escalation", (at - (clock.next_escalation_at or at)).total_seconds()))
            await clock_store.mark_escalated(uow.conn, clock.case_id, clock.kind, level or clock.escalation_level or "",
                                             self._next_escalation(level) if level else None)
        return fired

    def _next_escalation(self, level: str) -> datetime | None:
        """When a case escalated to `level` goes one further up if still overdue (None: the top)."""
        return self._policy.next_escalation_at(self._clock.now()) if self._policy.next_level(level) else None

    async def seconds_until_next(self, at_most: float) -> float:
        """Seconds until the next clock needs firing, at most `at_most` (0 when one is due already)."""
        upcoming = await clock_store.next_fire_at(self._pool_of())
        if upcoming is None:
            return at_most
        return max(0.0, min(at_most, (upcoming - self._clock.now()).total_seconds()))

    async def refresh_gauges(self) -> None:
        """Running and overdue clock counts for /metrics."""
        async with self._pool_of().acquire() as conn:
            running, overdue = await clock_store.count_running(conn, self._clock.now())
            faulted = await clock_store.count_faulted(conn)
        metrics.CLOCKS_FAULTED.labels(SERVICE).set(faulted)
        metrics.CLOCKS_RUNNING.labels(SERVICE).set(running)
        metrics.CLOCKS_OVERDUE.labels(SERVICE).set(overdue)

    def _level(self, clock: clock_store.DueClock) -> str:
        # The dispatch and check stages are the command center's own: late, they go above it (leadership).
        if clock.kind in (clock_store.DISPATCH, clock_store.CHECK):
            return self._policy.escalation_level(clock.owner, own_stage=True)
        return self._policy.escalation_level(clock.owner)

    def _stage(self, clock: clock_store.DueClock) -> str:
        return clock.kind if clock.kind in (clock_store.DISPATCH, clock_store.SIGN, clock_store.CHECK) else "handling"

    async def _emit_warning(self, uow: UnitOfWork, clock: clock_store.DueClock) -> None:
        due_at = self._policy.local(clock.due_at)
        label = self._policy.category_label(clock.category) if clock.category else "待分类"
        stage = self._stage(clock)
        await self._log.emit(uow, c.CaseWarned(case_no=clock.case_no, owner=clock.owner, stage=stage,
                                               due_at=due_at), clock.case_id)
        uow.emit(self._topics.tasks(clock.owner), t.TaskUrged(
            case_no=clock.case_no, owner=clock.owner, level="reminder", due_at=due_at,
            text=reminder_text(clock.case_no, label, due_at, stage),
        ).envelope(source=SERVICE, case_id=clock.case_id))

    async def _emit_overdue(self, uow: UnitOfWork, clock: clock_store.DueClock, level: str) -> None:
        due_at = self._policy.local(clock.due_at)
        label = self._policy.category_label(clock.category) if clock.category else "待分类"
        stage = self._stage(clock)
        await self._log.emit(uow, c.CaseOverdue(case_no=clock.case_no, owner=clock.owner, stage=stage, due_at=due_at),
                             clock.case_id)
        uow.emit(self._topics.tasks(clock.owner), t.TaskUrged(
            case_no=clock.case_no, owner=clock.owner, level="overdue", due_at=due_at,
            text=overdue_text(clock.case_no, label, due_at, level),
        ).envelope(source=SERVICE, case_id=clock.case_id))
        await self._emit_escalation(uow, clock, level)

    async def _emit_escalation(self, uow: UnitOfWork, clock: clock_store.DueClock, level: str) -> None:
        """case.escalated, and task.escalated on the owner's topic (and the command center's, at that level)."""
        due_at = self._policy.local(clock.due_at)
        label = self._policy.category_label(clock.category) if clock.category else "待分类"
        stage = self._stage(clock)
        await self._log.emit(uow, c.CaseEscalated(case_no=clock.case_no, owner=clock.owner, stage=stage, level=level,
                                                  reason=escalation_reason(due_at, stage)), clock.case_id)
        told = t.TaskEscalated(case_no=clock.case_no, owner=clock.owner, stage=stage, level=level, due_at=due_at,
                               text=escalated_text(clock.case_no, label, due_at, level, stage))
        topics = [self._topics.tasks(clock.owner)]
        if level == "command_center" and self._policy.command_center != clock.owner:
            topics.append(self._topics.tasks(self._policy.command_center))
        for topic in topics:
            uow.emit(topic, told.envelope(source=SERVICE, case_id=clock.case_id))


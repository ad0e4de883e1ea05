"""Supervision's handlers: the case log (fold every case event once), owners' updates, the command
center's decisions, and the deadlines that come due.

Supervision is the authority on a case's state after dispatch. An event it decides (signed,
resolved, closed, reworked, reopened, warned …) is folded into its read model in the same
transaction that queues it for wangge.cases, and its id is claimed there: when the event comes
back from Kafka, the claim makes it a no-op. Each fact is written once.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from pydantic import ValidationError

from services.supervision import metrics
from services.supervision.adapters import case_store, clock_store, config_store, stats_days
from services.supervision.domain import clocks
from shared.street_config import StreetConfigError, from_mapping
from services.supervision.domain.decisions import (
    Allowed, CaseSnapshot, Refused, decide_check, decide_extension, decide_suspension, decide_update, decide_urge,
    reopens,
)
from services.supervision.domain.notices import (
    commented_text, escalated_text, escalation_reason, overdue_text, reminder_text, urged_text,
)
from services.supervision.domain.overdue import is_overdue
from services.supervision.domain.policy import StreetPolicy
from services.supervision.domain.read_model import case_columns
from services.supervision.domain.states import ANNOTATIONS, EVENT_TARGETS, HELD_STATES, Fold, next_state
from shared.auth import is_signed, update_signer
from shared.clock import now
from shared.consumer import current_record
from shared.contracts import Envelope, EventModel, InvalidMessage, parse_event, registered_types
from shared.contracts import cases as c
from shared.contracts import tasks as t
from shared.contracts.envelope import describe_validation_error
from shared.errors import describe, is_transient
from shared.kafka import topic_name_problem
from shared.personal_data import mask_personal
from shared.topics import Topics
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

SERVICE = "supervision"
# The deadline poller's notices: figures of their own day only (went_overdue), no key of the case changed.
DEADLINE_NOTICES = frozenset({"case.warned", "case.overdue", "case.escalated"})
CASES_CONSUMER = "supervision:cases"
UPDATES_CONSUMER = "supervision:task-updates"
# Owner codes become topic names (wangge.tasks.<owner>): only these characters can.
_TOPIC_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")

UowFactory = Callable[[], UnitOfWork]


class LivePolicy:
    """The street's policy under the current configuration (supervision's street_config table), shared by
    the fold and the poller of one process: cached, and reloaded when the table's version moved (checked
    once per poll, and set at once by the admin route that committed a change)."""

    def __init__(self, policy: StreetPolicy):
        self.policy = policy

    async def refresh(self, conn) -> StreetPolicy:
        """Reload if another instance (or this one) committed a newer configuration."""
        version = await config_store.version(conn)
        if version and version != self.policy.version:
            row = await config_store.current(conn)
            if row is not None:
                self.set(row["config"], row["version"])
        return self.policy

    def set(self, config: dict, version: int) -> None:
        """Follow a committed configuration (an invalid stored one is logged and ignored)."""
        try:
            parsed = from_mapping(config, f"street_config version {version}")
        except StreetConfigError as exc:
            log.error("%s; keeping version %d", exc, self.policy.version)
            return
        if version > self.policy.version or self.policy.version == 0:
            self.policy = self.policy.with_config(parsed, version)
            log.info("street configuration version %d in force", version)


class CaseLog:
    """Folds case events into the read model, the history and the clocks, once per event id."""

    def __init__(self, topics: Topics, policy: StreetPolicy | LivePolicy):
        self._topics = topics
        self.live = policy if isinstance(policy, LivePolicy) else LivePolicy(policy)

    @property
    def _policy(self) -> StreetPolicy:
        return self.live.policy

    async def __call__(self, envelope: Envelope, uow: UnitOfWork) -> None:
        """A wangge.cases event: fold it, then react (an unsatisfied answer reopens a closed case)."""
        if not envelope.case_id:
            raise InvalidMessage("an event on wangge.cases needs case_id (the contract keys every case event by it)")
        event = _typed(envelope)
        fold = await self.record(uow, envelope, event)
        if fold is not None and isinstance(event, c.CaseSurveyAnswered):
            await self._after_survey(uow, envelope.case_id, event, fold)
        if (fold is not None and fold.effect == "moved" and isinstance(event, c.CaseAccepted)
                and event.resolved_on_the_spot is not None):
            await self._close_on_the_spot(uow, envelope, event)
        if fold is not None and isinstance(event, c.CaseCommented):
            await self._forward_comment(uow, envelope.case_id, event, fold)
            if event.reopen:
                await self._reopen_on_comment(uow, envelope.case_id, event, fold)

    async def emit(self, uow: UnitOfWork, event: EventModel, case_id: str, *, at: datetime | None = None) -> Envelope:
        """An event supervision decided: folded here at once and queued for wangge.cases in the same transaction."""
        envelope = event.envelope(source=SERVICE, case_id=case_id, occurred_at=at)
        await self.record(uow, envelope, event)
        uow.emit(self._topics.cases, envelope)
        return envelope

    async def record(self, uow: UnitOfWork, envelope: Envelope, event: EventModel | None) -> Fold | None:
        """Apply one event to its case; None if this event id was applied before."""
        assert envelope.case_id is not None
        if not await uow.claim(CASES_CONSUMER, envelope.id):
            return None
        current = await case_store.lock_case_state(uow.conn, envelope.case_id)
        fold = next_state(current, envelope.type)
        if fold.effect == "refused":
            # Kept in the history for the operators to see; the state stays as it was.
            log.warning("case %s: %s %s refused: %s", envelope.case_id, envelope.type, envelope.id, fold.reason)
            uow.after_commit(lambda: metrics.CASE_EVENTS_REFUSED.labels(SERVICE, envelope.type).inc())
        columns = case_columns(event, envelope.type, envelope.occurred_at) if fold.applies else {}
        case_no = getattr(event, "case_no", None) or _text(envelope.data.get("case_no"))
        await case_store.save_case(uow.conn, envelope.case_id, case_no, fold.state, columns, envelope.occurred_at)
        await case_store.append_history(uow.conn, envelope, fold)
        zone = self._policy.calendar.zone
        today = now().astimezone(zone).date()
        # The kept days this case's figures are dated by may change (docs/STATISTICS.md, "Kept per day"), except
        # for the poller's own notices of today: they count on today alone and change no key of the case.
        if not (envelope.type in DEADLINE_NOTICES and envelope.occurred_at.astimezone(zone).date() == today):
            await stats_days.mark_case_days(uow.conn, envelope.case_id, zone.key, today)
        if fold.applies:
            await self._follow_clocks(uow, envelope, event, fold)
        return fold

    async def _follow_clocks(self, uow: UnitOfWork, envelope: Envelope, event: EventModel | None, fold: Fold) -> None:
        """Open, stop, suspend, resume or move the clocks an applied event concerns."""
        assert envelope.case_id is not None
        conn, case_id, at, policy = uow.conn, envelope.case_id, envelope.occurred_at, self._policy
        if isinstance(event, c.CaseReported) and fold.effect == "moved":
            await self._open_stage(uow, clock_store.DISPATCH, case_id, event.case_no, policy.command_center,
                                   event.category or "", at, envelope.id)
            return
        if fold.effect != "moved":
            if isinstance(event, c.CaseExtensionDecided) and event.approved:
                clock = await clock_store.running_clock(conn, case_id)
                if clock is not None:
                    warn = clocks.extended_warn_at(policy.calendar, clock["limit_unit"], clock["started_at"],
                                                   event.due_at, policy.warn_fraction)
                    assumed = policy.calendar.assumed_between(clock["started_at"], event.due_at)
                    await clock_store.move_deadline(conn, case_id, event.due_at, warn, assumed)
                    self._count_assumed(uow, clock_store.HANDLING, assumed)
            return
        stopping = []
        if fold.state in clocks.DISPATCH_STAGE_ENDS:
            stopping.append(clock_store.DISPATCH)
        # Stage clocks stop when the case leaves the state they wait in (a re-dispatch restarts sign below).
        if fold.state not in clocks.SIGN_STAGE_STATES:
            stopping.append(clock_store.SIGN)
        if fold.state not in clocks.CHECK_STAGE_STATES:
            stopping.append(clock_store.CHECK)
        if (not isinstance(event, (c.CaseDispatched, c.CaseSuspended, c.CaseResumed))
                and not clocks.clock_runs_in(fold.state)):
            stopping.append(clock_store.HANDLING)
        # One statement for every clock this move stops (a dispatch stops neither sign nor handling: it opens them).
        await clock_store.stop_clocks(conn, case_id, at, fold.state or "unknown", *stopping)
        if isinstance(event, c.CaseDispatched):
            assumed = policy.calendar.assumed_between(event.dispatched_at, event.due_at)
            await clock_store.open_clock(
                conn, case_id=case_id, case_no=event.case_no, owner=event.owner, category=event.category,
                limit_value=event.time_limit.value, limit_unit=event.time_limit.unit, started_at=event.dispatched_at,
                warn_at=policy.warn_at(event.dispatched_at, event.time_limit.value, event.time_limit.unit,
                                       event.due_at),
                due_at=event.due_at, opened_by=envelope.id, calendar_assumed=assumed)
            self._count_assumed(uow, clock_store.HANDLING, assumed)
            await self._open_stage(uow, clock_store.SIGN, case_id, event.case_no, event.owner, event.category,
                                   event.dispatched_at, envelope.id)
        elif isinstance(event, c.CaseSuspended):
            clock = await clock_store.running_clock(conn, case_id)
            if clock is not None and clock["state"] == "running":
                calendar, unit = policy.calendar, clock["limit_unit"]
                warn_left = None if clock["warned_at"] else clocks.time_left(calendar, unit, at, clock["warn_at"])
                await clock_store.suspend_clock(conn, case_id, at, clocks.time_left(calendar, unit, at, clock["due_at"]),
                                                warn_left)
        elif isinstance(event, c.CaseResumed):
            clock = await clock_store.running_clock(conn, case_id)
            if clock is not None and clock["state"] == "suspended":
                due, warn = self.resumed(clock, at)
                # The event's deadline is the one the owner and resident were told; it wins if it differs.
                await clock_store.resume_clock(conn, case_id, event.due_at, min(warn, event.due_at) if warn else None)
        if isinstance(event, (c.CaseResolved, c.CaseExplained)) and fold.state in clocks.CHECK_STAGE_STATES:
            category = await conn.fetchval("SELECT category FROM cases WHERE case_id = $1", case_id)
            await self._open_stage(uow, clock_store.CHECK, case_id, event.case_no, policy.command_center,
                                   category or "", at, envelope.id)

    async def _open_stage(self, uow: UnitOfWork, stage: str, case_id: str, case_no: str, owner: str, category: str,
                          start: datetime, opened_by: str) -> None:
        """Start a stage clock (dispatch, sign, check) with the street's limit for it."""
        policy = self._policy
        limit = policy.stage_limit(stage)
        warn, due = policy.stage_due(stage, start)
        assumed = policy.calendar.assumed_between(start, due)
        await clock_store.open_clock(
            uow.conn, kind=stage, case_id=case_id, case_no=case_no, owner=owner, category=category,
            limit_value=limit.value, limit_unit=limit.unit, started_at=start, warn_at=warn, due_at=due,
            opened_by=opened_by, calendar_assumed=assumed)
        self._count_assumed(uow, stage, assumed)

    @staticmethod
    def _count_assumed(uow: UnitOfWork, kind: str, assumed: bool) -> None:
        if assumed:
            uow.after_commit(lambda: metrics.CALENDAR_UNKNOWN_YEAR.labels(SERVICE, kind).inc())

    def resumed(self, clock, at: datetime) -> tuple[datetime, datetime | None]:
        """(due_at, warn_at) of a suspended clock resumed at `at`: the time that was left, from now on."""
        return clocks.resumed_deadlines(self._policy.calendar, clock["limit_unit"], at, clock["due_left_s"] or 0.0,
                                        clock["warn_left_s"])

    async def _close_on_the_spot(self, uow: UnitOfWork, envelope: Envelope, accepted: c.CaseAccepted) -> None:
        """自行处置: the coordinator fixed it on the spot; closed at once, by them, without dispatch (no owner's
        clock ever ran, so it is on time). Same transaction as the acceptance's fold: never accepted and left."""
        assert envelope.case_id is not None and accepted.resolved_on_the_spot is not None
        worker = await uow.conn.fetchval("SELECT reported_by FROM cases WHERE case_id = $1", envelope.case_id)
        spot = accepted.resolved_on_the_spot
        await self.emit(uow, c.CaseClosed(
            case_no=accepted.case_no, owner=self._policy.command_center, outcome="resolved", result=spot.result,
            note="网格员自行处置，现场已解决", by=f"coordinator:{worker}" if worker else "coordinator",
            closed_at=envelope.occurred_at, on_time=True, on_the_spot=True, media=spot.media), envelope.case_id,
            at=envelope.occurred_at)

    async def _forward_comment(self, uow: UnitOfWork, case_id: str, comment: c.CaseCommented, fold: Fold) -> None:
        """A resident's comment: in the history (folded above), and to the holder as task.commented — once, since
        this runs in the transaction that claimed the event. A case no owner holds keeps it for the operators."""
        if fold.state not in HELD_STATES:
            return
        owner = await uow.conn.fetchval("SELECT owner FROM cases WHERE case_id = $1", case_id)
        if not owner:
            return
        told = t.TaskCommented(case_no=comment.case_no, owner=owner, comment_id=comment.comment_id,
                               note=comment.text, media=comment.media,
                               text=commented_text(comment.case_no, comment.text, len(comment.media)))
        uow.emit(self._topics.tasks(owner), told.envelope(source=SERVICE, case_id=case_id))

    async def _reopen_on_comment(self, uow: UnitOfWork, case_id: str, comment: c.CaseCommented, fold: Fold) -> None:
        """A resident's "not solved" on a closed case (an Open311 client's status=REOPEN): reopened like an
        unsatisfied survey answer, within the same window after the close; otherwise it stays a comment."""
        row = await uow.conn.fetchrow("SELECT owner, closed_at FROM cases WHERE case_id = $1", case_id)
        window = timedelta(days=self._policy.config.survey_window_days)
        within = row is not None and row["closed_at"] is not None and now() - row["closed_at"] <= window
        if not reopens(fold.state, "unsatisfied", within):
            log.info("case %s: a resident's reopen request left as a comment (%s)", comment.case_no,
                     "not closed" if fold.state != "closed" else "after the survey window")
            return
        reason = f"居民反映问题未解决：{comment.text}"  # masked by intake already
        await self.emit(uow, c.CaseReopened(case_no=comment.case_no, owner=(row["owner"] if row else None)
                                            or self._policy.command_center, reason=reason, by="resident"), case_id)

    async def _after_survey(self, uow: UnitOfWork, case_id: str, answer: c.CaseSurveyAnswered, fold: Fold) -> None:
        if not reopens(fold.state, answer.verdict, answer.within_window):
            return
        owner = await uow.conn.fetchval("SELECT owner FROM cases WHERE case_id = $1", case_id)
        # The comment is the resident's own words: a number typed into it stays masked on wangge.cases.
        reason = "居民回访不满意" + (f"：{mask_personal(answer.comment)}" if answer.comment else "")
        await self.emit(uow, c.CaseReopened(case_no=answer.case_no, owner=owner or self._policy.command_center,
                                            reason=reason, survey_id=answer.survey_id, by="resident"), case_id)


@dataclass(frozen=True)
class Outcome:
    """What became of an owner's update or an operator's decision."""

    state: str | None
    event_type: str | None = None
    refused: Refused | None = None
    duplicate: bool = False
    due_at: datetime | None = None


class OwnerUpdates:
    """Owners' answers (wangge.task-updates, or POST /api/v1/tasks/{case_no}/updates) become case events."""

    def __init__(self, log_: CaseLog, topics: Topics, uow: UowFactory, *, require_signature: bool = False,
                 production: bool = False):
        self._log = log_
        self._topics = topics
        self._uow = uow
        self._require_signature = require_signature
        self._production = production

    async def __call__(self, envelope: Envelope, uow: UnitOfWork) -> None:
        """A message on wangge.task-updates: apply it, or refuse it on the owner's topic."""
        if envelope.type not in t.UPDATE_TYPES:
            raise InvalidMessage(f"wangge.task-updates carries {', '.join(t.UPDATE_TYPES)}; not {envelope.type!r}")
        if not envelope.case_id:
            raise InvalidMessage("a task update needs case_id (the case it answers)")
        update = parse_event(envelope)
        assert isinstance(update, t.TaskEvent)
        if not set(update.owner) <= _TOPIC_SAFE:
            raise InvalidMessage(f"owner {update.owner!r} cannot be an owner code (letters, digits, . _ - only)")
        await self._check_sender(uow, update.owner)
        await self.apply(uow, update, update_id=envelope.id, case_id=envelope.case_id)

    async def _check_sender(self, uow: UnitOfWork, owner: str) -> None:
        """The update's owner must be the owner whose credential signed it (always in production; else if signed)."""
        record = current_record()
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
        assert isinstance(update, t.TaskEvent)
        if not await uow.claim(UPDATES_CONSUMER, update_id):
            return Outcome(None, duplicate=True)
        row = await case_store.lock_case(uow.conn, case_id=case_id, case_no=None if case_id else update.case_no)
        case = case_store.snapshot(row)
        decision = decide_update(case, update.owner, update.TYPE, update.case_no, until=getattr(update, "until", None))
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

    async def _case_event(self, uow: UnitOfWork, decision: Allowed, update: t.TaskEvent, update_id: str,
                          case: CaseSnapshot) -> tuple[EventModel, datetime | None]:
        common = {"case_no": case.case_no, "owner": update.owner, "update_id": update_id}
        # Owners' words go onto wangge.cases, which is kept for good: a phone number typed into them is masked.
        m = mask_personal
        if isinstance(update, t.TaskAccepted):
            return c.CaseSigned(**common), None
        if isinstance(update, t.TaskProgress):
            return c.CaseProgressReported(**common, note=m(update.note), media=update.media), None
        if isinstance(update, t.TaskResolved):
            return c.CaseResolved(**common, result=m(update.result), media=update.media), None
        if isinstance(update, t.TaskReturned):
            return c.CaseReturned(**common, reason=m(update.reason)), None
        if isinstance(update, t.TaskExtensionRequested):
            return c.CaseExtensionRequested(**common, until=update.until, reason=m(update.reason)), None
        if isinstance(update, t.TaskExplained):
            return c.CaseExplained(**common, explanation=m(update.explanation)), None
        if isinstance(update, t.TaskSuspended):
            return c.CaseSuspended(**common, reason=m(update.reason), by=f"owner:{update.owner}"), None
        if isinstance(update, t.TaskResumed):
            due = await resumed_due(uow, self._log, case.case_id, case.due_at)
            return c.CaseResumed(**common, by=f"owner:{update.owner}", due_at=due), due
        raise InvalidMessage(f"{decision.event_type} has no case event")  # UPDATE_RULES and this list agree


async def resumed_due(uow: UnitOfWork, case_log: CaseLog, case_id: str, fallback: datetime | None) -> datetime:
    """The deadline of a suspended case resumed now: now plus the time that was left at suspension."""
    clock = await clock_store.running_clock(uow.conn, case_id)
    if clock is None or clock["state"] != "suspended":
        return fallback or now()
    return case_log.resumed(clock, now())[0]


class CommandCenter:
    """The operators' decisions on a case: the on-site check, extensions, suspension."""

    def __init__(self, log_: CaseLog, topics: Topics, policy: StreetPolicy, uow: UowFactory):
        self._log = log_
        self._topics = topics
        self._policy = policy
        self._uow = uow

    async def check(self, case_no: str, *, passed: bool, note: str | None, by: str, media: list[str] | None = None,
                    grids: tuple[str, ...] | None = None) -> Outcome:
        """核查: pass closes a resolved/explained case (the resident gets the resolution); fail sends it back.
        `grids`: a coordinator checks only the cases of their unit grids (None: an operator, any case)."""
        note = mask_personal(note) if note else note
        media = list(media or [])
        async with self._uow() as uow:
            row = await case_store.lock_case(uow.conn, case_no=case_no)
            case = case_store.snapshot(row)
            decision = decide_check(case, case_no, passed, grids)
            if isinstance(decision, Refused):
                return Outcome(case.state if case else None, refused=decision)
            assert case is not None and row is not None
            owner = case.owner or self._policy.command_center
            if passed:
                outcome = "explained" if case.state == "explained" else "resolved"
                result = (row["explanation"] if outcome == "explained" else row["result"]) or ""
                on_time = row["resolved_at"] is not None and case.due_at is not None and row["resolved_at"] <= case.due_at
                event: EventModel = c.CaseClosed(case_no=case_no, owner=owner, outcome=outcome, result=result, note=note,
                                                 by=by, closed_at=now(), on_time=on_time, media=media)
            else:
                event = c.CaseReworked(case_no=case_no, owner=owner, note=note or "核查未通过", by=by, media=media)
            await self._log.emit(uow, event, case.case_id)
            await uow.commit()
        return Outcome(EVENT_TARGETS[decision.event_type], decision.event_type)

    async def decide_extension(self, case_no: str, *, approved: bool, until: datetime | None, note: str | None,
                               by: str) -> Outcome:
        """延期审批: approved moves the deadline (to `until`, or what the owner asked for); the owner hears either way."""
        note = mask_personal(note) if note else note
        async with self._uow() as uow:
            row = await case_store.lock_case(uow.conn, case_no=case_no)
            case = case_store.snapshot(row)
            until = until or (row["extension_until"] if row is not None else None)
            decision = decide_extension(case, case_no, approved, until)
            if isinstance(decision, Refused):
                return Outcome(case.state if case else None, refused=decision)
            assert case is not None and case.due_at is not None and until is not None
            due = self._policy.local(until if approved else case.due_at)
            owner = case.owner or self._policy.command_center
            await self._log.emit(uow, c.CaseExtensionDecided(case_no=case_no, owner=owner, approved=approved, due_at=due,
                                                             note=note, by=by), case.case_id)
            told = t.TaskExtensionDecided(case_no=case_no, owner=owner, approved=approved, due_at=due, note=note)
            uow.emit(self._topics.tasks(owner), told.envelope(source=SERVICE, case_id=case.case_id))
            await uow.commit()
        return Outcome(case.state, decision.event_type, due_at=due)

    async def suspend(self, case_no: str, *, suspend: bool, reason: str | None, by: str) -> Outcome:
        """挂起 / 恢复 by the command center (owners do the same with task.suspended / task.resumed)."""
        reason = mask_personal(reason) if reason else reason
        async with self._uow() as uow:
            row = await case_store.lock_case(uow.conn, case_no=case_no)
            case = case_store.snapshot(row)
            decision = decide_suspension(case, case_no, suspend)
            if isinstance(decision, Refused):
                return Outcome(case.state if case else None, refused=decision)
            assert case is not None
            owner = case.owner or self._policy.command_center
            due = None
            if suspend:
                event: EventModel = c.CaseSuspended(case_no=case_no, owner=owner, reason=reason or "", by=by)
            else:
                due = await resumed_due(uow, self._log, case.case_id, case.due_at)
                event = c.CaseResumed(case_no=case_no, owner=owner, by=by, due_at=due)
            await self._log.emit(uow, event, case.case_id)
            await uow.commit()
        return Outcome(EVENT_TARGETS[decision.event_type], decision.event_type, due_at=due)

    async def urge(self, case_no: str, *, note: str, by: str) -> Outcome:
        """督办 by hand: case.urged in the history (and the figures), task.urged with the note to the holder."""
        note = mask_personal(note.strip())
        async with self._uow() as uow:
            row = await case_store.lock_case(uow.conn, case_no=case_no)
            case = case_store.snapshot(row)
            decision = decide_urge(case, case_no)
            if isinstance(decision, Refused):
                return Outcome(case.state if case else None, refused=decision)
            assert case is not None and row is not None and case.owner is not None and case.due_at is not None
            due = self._policy.local(case.due_at)
            overdue = is_overdue(case.state, case.due_at, case.went_overdue, now())
            await self._log.emit(uow, c.CaseUrged(case_no=case_no, owner=case.owner, note=note, by=by, overdue=overdue),
                                 case.case_id)
            label = self._policy.category_label(row["category"]) if row["category"] else "待分类"
            told = t.TaskUrged(case_no=case_no, owner=case.owner, level="overdue" if overdue else "reminder",
                               due_at=due, text=urged_text(case_no, label, due, note, overdue), note=note)
            uow.emit(self._topics.tasks(case.owner), told.envelope(source=SERVICE, case_id=case.case_id))
            await uow.commit()
        return Outcome(case.state, decision.event_type)


class DeadlineHandler:
    """Fires the deadlines that have come: 催办 at 75%, 超期 + 督办 + escalation at 100%."""

    def __init__(self, log_: CaseLog, topics: Topics, policy: StreetPolicy, uow: UowFactory, pool_of: Callable):
        self._log = log_
        self._topics = topics
        self._uow = uow
        self._pool_of = pool_of

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
            due = await clock_store.claim_due(uow.conn)
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
            await clock_store.mark_warned(uow.conn, clock.case_id, clock.kind)
            fired.append(("warning", (now() - clock.warn_at).total_seconds()))
        if clock.overdue_due:
            level = self._level(clock)
            await self._emit_overdue(uow, clock, level)
            await clock_store.mark_overdue(uow.conn, clock.case_id, level, clock.kind, self._next_escalation(level))
            fired.append(("overdue", (now() - clock.due_at).total_seconds()))
        elif clock.escalation_due:
            # Still overdue an interval later: one more level up the ladder, each level once.
            level = self._policy.next_level(clock.escalation_level)
            if level is not None:
                await self._emit_escalation(uow, clock, level)
                fired.append(("escalation", (now() - (clock.next_escalation_at or now())).total_seconds()))
            await clock_store.mark_escalated(uow.conn, clock.case_id, clock.kind, level or clock.escalation_level or "",
                                             self._next_escalation(level) if level else None)
        return fired

    def _next_escalation(self, level: str) -> datetime | None:
        """When a case escalated to `level` goes one further up if still overdue (None: the top)."""
        return self._policy.next_escalation_at(now()) if self._policy.next_level(level) else None

    async def seconds_until_next(self, at_most: float) -> float:
        """Seconds until the next clock needs firing, at most `at_most` (0 when one is due already)."""
        upcoming = await clock_store.next_fire_at(self._pool_of())
        if upcoming is None:
            return at_most
        return max(0.0, min(at_most, (upcoming - now()).total_seconds()))

    async def refresh_gauges(self) -> None:
        """Running and overdue clock counts for /metrics."""
        async with self._pool_of().acquire() as conn:
            running, overdue = await clock_store.count_running(conn)
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


def _typed(envelope: Envelope) -> EventModel | None:
    """The typed data of the case events supervision folds; None for types kept as history only."""
    folded = envelope.type in EVENT_TARGETS or envelope.type in ANNOTATIONS
    if folded and envelope.type in registered_types():
        return parse_event(envelope)  # InvalidMessage → the rejected topic, with the reason
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None

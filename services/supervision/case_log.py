"""The case log: every case event folded once into the case, its history, its clocks and the days its figures are
kept by — a partition's batch as a set — and what a fold makes happen (a reopening, a note to the owner).

Supervision is the authority on a case's state after dispatch. An event it decides (signed, resolved, closed,
reworked, reopened, warned …) is folded here in the same transaction that queues it for wangge.cases, and its id is
claimed there: when the event comes back from Kafka, the claim makes it a no-op. Each fact is written once.

The bus (bootstrap.py) hands `fold_case_events` every fresh event of a batch at once (shared.messagebus.ProjectingBus)
and then the handlers below their runs of one type; what they need is handed in by name.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Sequence

from services.supervision import metrics
from services.supervision.adapters import clock_store, fold_store
from services.supervision.domain import clocks
from services.supervision.domain.batch_fold import ClockOp, Plan, plan_batch
from services.supervision.domain.decisions import reopens
from services.supervision.domain.notices import commented_text
from services.supervision.domain.policy import StreetPolicy
from services.supervision.domain.states import HELD_STATES
from services.supervision.live_policy import LivePolicy
from shared.clock import Clock
from shared.contracts import Envelope, EventModel
from shared.contracts import cases as c
from shared.contracts import tasks as t
from shared.messagebus import Message
from shared.personal_data import mask_personal
from shared.topics import Topics
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

SERVICE = "supervision"
CASES_CONSUMER = "supervision:cases"


class CaseLog:
    """Folds case events into the read model, the history and the clocks, once per event id, a batch at a time."""

    def __init__(self, topics: Topics, policy: StreetPolicy | LivePolicy, clock: Clock | None = None):
        self.topics = topics
        self.live = policy if isinstance(policy, LivePolicy) else LivePolicy(policy)
        self.clock = clock or Clock()

    @property
    def policy(self) -> StreetPolicy:
        return self.live.policy

    async def fold_all(self, uow: UnitOfWork, messages: Sequence[Message[Any]]) -> Plan:
        """Apply claimed events to their cases, in order, with a few statements whatever their number: the cases
        locked and read (1), new case rows (1), the history (1), the case rows (1), the days marked (1), the clocks
        (one or two per layer: a case's first change, its second…)."""
        conn, policy = uow.conn, self.policy
        views = await fold_store.lock_cases(conn, [m.case_id for m in messages])
        zone = policy.calendar.zone
        today = self.clock.now().astimezone(zone).date()
        plan = plan_batch(messages, views, policy, today)
        await fold_store.create_cases(conn, plan.new_cases)
        await fold_store.append_history(conn, plan.history)
        await fold_store.save_cases(conn, plan.cases.values())
        await fold_store.mark_case_days(conn, plan.marked, zone.key, today)
        for layer in plan.layers():
            await self._write_clocks(uow, layer)
        for message, fold in plan.folds:
            if fold.effect == "refused":
                # Kept in the history for the operators to see; the state stays as it was.
                log.warning("case %s: %s %s refused: %s", message.case_id, message.envelope.type, message.id,
                            fold.reason)
                uow.after_commit(lambda type_=message.envelope.type:
                                 metrics.CASE_EVENTS_REFUSED.labels(SERVICE, type_).inc())
        for kind in plan.assumed:
            uow.after_commit(lambda kind=kind: metrics.CALENDAR_UNKNOWN_YEAR.labels(SERVICE, kind).inc())
        return plan

    async def _write_clocks(self, uow: UnitOfWork, layer: list[ClockOp]) -> None:
        """One layer of clock changes: every open together, every stop together, the rest one by one."""
        opened = [row for op in layer if op.kind == "open" for row in op.rows]
        stopped = [row for op in layer if op.kind == "stop" for row in op.rows]
        if stopped:
            await fold_store.stop_clocks(uow.conn, stopped)
        if opened:
            await fold_store.open_clocks(uow.conn, opened)
        for op in layer:
            if op.kind in ("suspend", "resume", "move"):
                await self._one_clock(uow, op)

    async def _one_clock(self, uow: UnitOfWork, op: ClockOp) -> None:
        """Suspend, resume or move the handling clock: from the time it has left, so it is read first."""
        conn, policy, case_id = uow.conn, self.policy, op.case_id
        clock = await clock_store.running_clock(conn, case_id)
        if clock is None:
            return
        if op.kind == "move" and op.due_at is not None:
            warn = clocks.extended_warn_at(policy.calendar, clock["limit_unit"], clock["started_at"], op.due_at,
                                           policy.warn_fraction)
            assumed = policy.calendar.assumed_between(clock["started_at"], op.due_at)
            await clock_store.move_deadline(conn, case_id, op.due_at, warn, assumed, at=self.clock.now())
            if assumed:
                uow.after_commit(lambda: metrics.CALENDAR_UNKNOWN_YEAR.labels(SERVICE, clock_store.HANDLING).inc())
        elif op.kind == "suspend" and clock["state"] == "running" and op.at is not None:
            calendar, unit = policy.calendar, clock["limit_unit"]
            warn_left = None if clock["warned_at"] else clocks.time_left(calendar, unit, op.at, clock["warn_at"])
            await clock_store.suspend_clock(conn, case_id, op.at, clocks.time_left(calendar, unit, op.at,
                                                                                    clock["due_at"]), warn_left)
        elif op.kind == "resume" and clock["state"] == "suspended" and op.at is not None and op.due_at is not None:
            due, warn = self.resumed(clock, op.at)
            # The event's deadline is the one the owner and resident were told; it wins if it differs.
            await clock_store.resume_clock(conn, case_id, op.due_at, min(warn, op.due_at) if warn else None)

    def resumed(self, clock: Any, at: datetime) -> tuple[datetime, datetime | None]:
        """(due_at, warn_at) of a suspended clock resumed at `at`: the time that was left, from now on."""
        return clocks.resumed_deadlines(self.policy.calendar, clock["limit_unit"], at, clock["due_left_s"] or 0.0,
                                        clock["warn_left_s"])

    async def emit_all(self, uow: UnitOfWork, decided: Sequence[tuple[EventModel, str, datetime | None]]
                       ) -> list[Envelope]:
        """Events supervision decided, (event, case_id, occurred_at or None for now): claimed and folded here at
        once, and queued for wangge.cases in the same transaction (their return from Kafka is then a no-op)."""
        envelopes = [event.envelope(source=SERVICE, case_id=case_id, occurred_at=at) for event, case_id, at in decided]
        if not envelopes:
            return []
        await uow.claim_all(CASES_CONSUMER, [e.id for e in envelopes])
        await self.fold_all(uow, [Message(e, event) for e, (event, _, _) in zip(envelopes, decided)])
        for envelope in envelopes:
            uow.emit(self.topics.cases, envelope)
        return envelopes

    async def emit(self, uow: UnitOfWork, event: EventModel, case_id: str, *, at: datetime | None = None) -> Envelope:
        """One event supervision decided (emit_all of one)."""
        return (await self.emit_all(uow, [(event, case_id, at)]))[0]


# ---- the handlers the bus calls (bootstrap.py registers them) --------------------------------------------------------

async def fold_case_events(messages: list[Message[Any]], uow: UnitOfWork, case_log: CaseLog) -> None:
    """Every fresh event of a wangge.cases batch, folded as one set (the bus's projection)."""
    await case_log.fold_all(uow, messages)


async def _folded(uow: UnitOfWork, messages: Sequence[Message[Any]]) -> dict[str, Any]:
    """What the fold made of these events (their history rows: effect, state after) and of their cases now."""
    rows = await uow.conn.fetch(
        """SELECT e.event_id, e.effect, e.state_after, k.owner, k.closed_at, k.reported_by
           FROM case_events e JOIN cases k ON k.case_id = e.case_id WHERE e.event_id = ANY($1::text[])""",
        [m.id for m in messages])
    return {r["event_id"]: r for r in rows}


async def close_on_the_spot(messages: list[Message[c.CaseAccepted]], uow: UnitOfWork, case_log: CaseLog) -> None:
    """自行处置: the coordinator fixed it on the spot; closed at once, by them, without dispatch (no owner's clock ever
    ran, so it is on time). Same transaction as the acceptance's fold: never accepted and left."""
    spot = [m for m in messages if m.event.resolved_on_the_spot is not None]
    if not spot:
        return
    folded = await _folded(uow, spot)
    closing = []
    for m in spot:
        row = folded.get(m.id)
        if row is None or row["effect"] != "moved":
            continue
        worker, done = row["reported_by"], m.event.resolved_on_the_spot
        assert done is not None
        closing.append((c.CaseClosed(
            case_no=m.event.case_no, owner=case_log.policy.command_center, outcome="resolved", result=done.result,
            note="网格员自行处置，现场已解决", by=f"coordinator:{worker}" if worker else "coordinator",
            closed_at=m.occurred_at, on_time=True, on_the_spot=True, media=done.media), m.case_id, m.occurred_at))
    await case_log.emit_all(uow, closing)


async def reopen_if_unsatisfied(messages: list[Message[c.CaseSurveyAnswered]], uow: UnitOfWork,
                                case_log: CaseLog) -> None:
    """An unsatisfied answer within the survey window reopens the closed case."""
    folded = await _folded(uow, messages)
    reopening = []
    for m in messages:
        row, answer = folded.get(m.id), m.event
        if row is None or not reopens(row["state_after"], answer.verdict, answer.within_window):
            continue
        # The comment is the resident's own words: a number typed into it stays masked on wangge.cases.
        reason = "居民回访不满意" + (f"：{mask_personal(answer.comment)}" if answer.comment else "")
        reopening.append((c.CaseReopened(case_no=answer.case_no, owner=row["owner"] or case_log.policy.command_center,
                                         reason=reason, survey_id=answer.survey_id, by="resident"), m.case_id, None))
    await case_log.emit_all(uow, reopening)


async def forward_comments(messages: list[Message[c.CaseCommented]], uow: UnitOfWork, case_log: CaseLog) -> None:
    """A resident's comment: in the history (folded), and to the holder as task.commented — once, since this runs in
    the transaction that claimed the event. A case no owner holds keeps it for the operators. A "not solved" on a
    closed case (an Open311 client's status=REOPEN) reopens it like an unsatisfied survey answer, within the same
    window after the close; otherwise it stays a comment."""
    folded = await _folded(uow, messages)
    window = timedelta(days=case_log.policy.config.survey_window_days)
    now = case_log.clock.now()
    reopening = []
    for m in messages:
        row, comment = folded.get(m.id), m.event
        if row is None:
            continue
        if row["state_after"] in HELD_STATES and row["owner"]:
            told = t.TaskCommented(case_no=comment.case_no, owner=row["owner"], comment_id=comment.comment_id,
                                   note=comment.text, media=comment.media,
                                   text=commented_text(comment.case_no, comment.text, len(comment.media)))
            uow.emit(case_log.topics.tasks(row["owner"]), told.envelope(source=SERVICE, case_id=m.case_id))
        if not comment.reopen:
            continue
        within = row["closed_at"] is not None and now - row["closed_at"] <= window
        if not reopens(row["state_after"], "unsatisfied", within):
            log.info("case %s: a resident's reopen request left as a comment (%s)", comment.case_no,
                     "not closed" if row["state_after"] != "closed" else "after the survey window")
            continue
        reason = f"居民反映问题未解决：{comment.text}"  # masked by intake already
        reopening.append((c.CaseReopened(case_no=comment.case_no, owner=row["owner"] or case_log.policy.command_center,
                                         reason=reason, by="resident"), m.case_id, None))
    await case_log.emit_all(uow, reopening)

"""Supervision's handlers: fold case events into the read model and clocks; fire due deadlines."""
from __future__ import annotations

import logging

from services.supervision import metrics
from services.supervision.adapters import case_store, clock_store
from services.supervision.domain.clocks import clock_runs_in
from services.supervision.domain.notices import escalation_reason, overdue_text, reminder_text
from services.supervision.domain.policy import StreetPolicy
from services.supervision.domain.read_model import case_columns
from services.supervision.domain.states import ANNOTATIONS, EVENT_TARGETS, next_state
from shared.clock import now
from shared.contracts import Envelope, EventModel, InvalidMessage, parse_event, registered_types
from shared.contracts.cases import CaseDispatched, CaseEscalated, CaseOverdue, CaseWarned
from shared.contracts.tasks import TaskUrged
from shared.runtime import ServiceRuntime
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

SERVICE = "supervision"
CASES_CONSUMER = "supervision:cases"


class CaseEventHandler:
    """Applies each event of wangge.cases once: read model, history, handling clock."""

    def __init__(self, runtime: ServiceRuntime, policy: StreetPolicy):
        self._runtime = runtime
        self._policy = policy

    async def __call__(self, envelope: Envelope, uow: UnitOfWork) -> None:
        """Fold one envelope from wangge.cases into the read model, history and clock."""
        if not envelope.case_id:
            raise InvalidMessage("an event on wangge.cases needs case_id (the contract keys every case event by it)")
        event = _typed(envelope)
        if not await uow.claim(CASES_CONSUMER, envelope.id):
            return
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
        if fold.effect == "moved":
            await self._follow_clock(uow, envelope, event, fold.state)

    async def _follow_clock(self, uow: UnitOfWork, envelope: Envelope, event: EventModel | None, state: str | None) -> None:
        """A dispatch (re)starts the handling clock; leaving the owner's hands stops it."""
        assert envelope.case_id is not None
        if isinstance(event, CaseDispatched):
            await clock_store.open_clock(
                uow.conn,
                case_id=envelope.case_id,
                case_no=event.case_no,
                owner=event.owner,
                category=event.category,
                limit_value=event.time_limit.value,
                limit_unit=event.time_limit.unit,
                started_at=event.dispatched_at,
                warn_at=self._policy.warn_at(event.dispatched_at, event.time_limit.value, event.time_limit.unit, event.due_at),
                due_at=event.due_at,
                opened_by=envelope.id,
            )
        elif not clock_runs_in(state):
            await clock_store.stop_clock(uow.conn, envelope.case_id, envelope.occurred_at, state or "unknown")


class DeadlineHandler:
    """Fires the deadlines that have come: 催办 at 75%, 超期 + 督办 + escalation at 100%."""

    def __init__(self, runtime: ServiceRuntime, policy: StreetPolicy):
        self._runtime = runtime
        self._policy = policy

    async def fire_due(self) -> int:
        """Claim one batch of due deadlines (SKIP LOCKED), emit their events, commit; returns clocks handled."""
        fired: list[tuple[str, float]] = []
        async with self._runtime.uow() as uow:
            due = await clock_store.claim_due(uow.conn)
            for clock in due:
                if clock.warning_due:
                    self._emit_warning(uow, clock)
                    await clock_store.mark_warned(uow.conn, clock.case_id)
                    fired.append(("warning", (now() - clock.warn_at).total_seconds()))
                if clock.overdue_due:
                    level = self._policy.escalation_level(clock.owner)
                    self._emit_overdue(uow, clock, level)
                    await clock_store.mark_overdue(uow.conn, clock.case_id, level)
                    fired.append(("overdue", (now() - clock.due_at).total_seconds()))
            await uow.commit()
        for kind, delay in fired:  # counted only once committed: a rolled-back batch fires again later
            metrics.DEADLINES_FIRED.labels(SERVICE, kind).inc()
            metrics.DEADLINE_DELAY.labels(SERVICE, kind).observe(max(0.0, delay))
        if due:
            log.info("deadlines fired: %s", ", ".join(f"{c.case_no}" for c in due))
        return len(due)

    async def refresh_gauges(self) -> None:
        """Running and overdue clock counts for /metrics."""
        async with self._runtime.pool.acquire() as conn:
            running, overdue = await clock_store.count_running(conn)
        metrics.CLOCKS_RUNNING.labels(SERVICE).set(running)
        metrics.CLOCKS_OVERDUE.labels(SERVICE).set(overdue)

    def _emit_warning(self, uow: UnitOfWork, clock: clock_store.DueClock) -> None:
        topics, due_at = self._runtime.topics, self._policy.local(clock.due_at)
        label = self._policy.category_label(clock.category)
        uow.emit(topics.cases, CaseWarned(case_no=clock.case_no, owner=clock.owner, due_at=due_at)
                 .envelope(source=SERVICE, case_id=clock.case_id))
        uow.emit(topics.tasks(clock.owner), TaskUrged(
            case_no=clock.case_no, owner=clock.owner, level="reminder", due_at=due_at,
            text=reminder_text(clock.case_no, label, due_at),
        ).envelope(source=SERVICE, case_id=clock.case_id))

    def _emit_overdue(self, uow: UnitOfWork, clock: clock_store.DueClock, level: str) -> None:
        topics, due_at = self._runtime.topics, self._policy.local(clock.due_at)
        label = self._policy.category_label(clock.category)
        uow.emit(topics.cases, CaseOverdue(case_no=clock.case_no, owner=clock.owner, due_at=due_at)
                 .envelope(source=SERVICE, case_id=clock.case_id))
        uow.emit(topics.cases, CaseEscalated(
            case_no=clock.case_no, owner=clock.owner, level=level, reason=escalation_reason(due_at),
        ).envelope(source=SERVICE, case_id=clock.case_id))
        uow.emit(topics.tasks(clock.owner), TaskUrged(
            case_no=clock.case_no, owner=clock.owner, level="overdue", due_at=due_at,
            text=overdue_text(clock.case_no, label, due_at, level),
        ).envelope(source=SERVICE, case_id=clock.case_id))


def _typed(envelope: Envelope) -> EventModel | None:
    """The typed data of the case events supervision folds; None for types kept as history only."""
    folded = envelope.type in EVENT_TARGETS or envelope.type in ANNOTATIONS
    if folded and envelope.type in registered_types():
        return parse_event(envelope)  # InvalidMessage → the rejected topic, with the reason
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None

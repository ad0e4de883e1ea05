"""Event handlers: a case accepted by intake is dispatched to its owner, once."""
from __future__ import annotations

import logging

from shared.clock import now, street_zone
from shared.contracts import Envelope, InvalidMessage, parse_event
from shared.contracts.cases import CaseAccepted, CaseDispatched
from shared.contracts.tasks import TaskAssigned
from shared.runtime import ServiceRuntime
from shared.uow import UnitOfWork
from shared.worktime import WorkCalendar
from services.routing.adapters import dispatch_store, street_store
from services.routing.domain.dispatching import DispatchPlan, plan_dispatch

log = logging.getLogger(__name__)

SOURCE = "routing"
CASES_CONSUMER = "routing:cases"


class CaseEvents:
    """Handles wangge.cases: dispatches case.accepted; every other type is another service's business."""

    def __init__(self, runtime: ServiceRuntime):
        self._runtime = runtime
        self._rules = street_store.RulesCache()

    async def __call__(self, envelope: Envelope, uow: UnitOfWork) -> None:
        """Dispatch an accepted case; ignore other case events."""
        if envelope.type != CaseAccepted.TYPE:
            return
        accepted = parse_event(envelope)  # InvalidMessage → wangge.cases.rejected with the reason
        assert isinstance(accepted, CaseAccepted)
        if not envelope.case_id:
            raise InvalidMessage("case.accepted without case_id: the envelope must name the case")
        await self.dispatch(envelope, accepted, uow)

    async def dispatch(self, envelope: Envelope, accepted: CaseAccepted, uow: UnitOfWork) -> None:
        """Decide the owner and due time, record the dispatch and emit case.dispatched + task.assigned."""
        case_id = envelope.case_id
        assert case_id is not None
        topics = self._runtime.topics
        if not await uow.claim(CASES_CONSUMER, envelope.id):
            return
        if await dispatch_store.is_dispatched(uow.conn, case_id):
            log.info("case %s (%s) already dispatched; %s ignored", accepted.case_no, case_id, envelope.id)
            return
        rules, overrides = await self._rules.get(uow.conn)
        calendar = WorkCalendar(zone=street_zone(), overrides=overrides)
        plan = plan_dispatch(
            rules, calendar, category=accepted.category, unit_grid=accepted.unit_grid, dispatched_at=now()
        )
        dispatched = _case_dispatched(accepted, plan).envelope(
            source=SOURCE, case_id=case_id, occurred_at=plan.dispatched_at
        )
        assigned = _task_assigned(accepted, plan).envelope(
            source=SOURCE, case_id=case_id, occurred_at=plan.dispatched_at
        )
        recorded = await dispatch_store.record_dispatch(
            uow.conn, case_id=case_id, case_no=accepted.case_no, category=accepted.category,
            unit_grid=accepted.unit_grid, plan=plan, accepted_event_id=envelope.id, event_id=dispatched.id,
        )
        if not recorded:  # another event for this case won the race
            return
        uow.emit(topics.cases, dispatched)
        uow.emit(topics.tasks(plan.assignment.owner.code), assigned)
        a = plan.assignment
        uow.after_commit(lambda: log.info(
            "case %s dispatched to %s (%s), due %s%s", accepted.case_no, a.owner.code, a.owner.name,
            plan.due_at.isoformat(), f" — {a.manual_reason}" if a.manual_reason else "",
        ))


def _case_dispatched(accepted: CaseAccepted, plan: DispatchPlan) -> CaseDispatched:
    a = plan.assignment
    return CaseDispatched(
        case_no=accepted.case_no,
        owner=a.owner.code,
        owner_name=a.owner.name,
        category=accepted.category,
        unit_grid=accepted.unit_grid,
        priority=a.priority,
        time_limit={"value": a.limit.value, "unit": a.limit.unit},
        dispatched_at=plan.dispatched_at,
        due_at=plan.due_at,
        manual_reason=a.manual_reason,  # beyond the contract's fields (allowed): why the command center got it
    )


def _task_assigned(accepted: CaseAccepted, plan: DispatchPlan) -> TaskAssigned:
    a = plan.assignment
    return TaskAssigned(
        case_no=accepted.case_no,
        owner=a.owner.code,
        category=accepted.category,
        category_name=a.category_name,
        description=accepted.description,
        unit_grid=accepted.unit_grid,
        location=accepted.location,
        address=accepted.address,
        media=accepted.media,
        due_at=plan.due_at,
        priority=a.priority,
        manual_reason=a.manual_reason,
    )

"""Handlers: dispatching accepted cases, following their returns, reworks, reopenings and closing,
and the operators' manual dispatch. Every dispatch goes through one Dispatcher."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Awaitable, Callable

import asyncpg

from shared.clock import now, street_zone
from shared.contracts import Envelope, InvalidMessage, parse_event
from shared.contracts.cases import (
    CaseAccepted, CaseClosed, CaseDispatched, CaseReopened, CaseReturned, CaseReworked,
)
from shared.contracts.registry import EventModel
from shared.contracts.tasks import TaskAssigned, TaskRecalled
from shared.runtime import ServiceRuntime
from shared.street_rules import StreetRules
from shared.topics import Topics
from shared.uow import UnitOfWork
from shared.worktime import WorkCalendar
from services.routing.adapters import case_store, dispatch_store, street_store
from services.routing.domain.dispatching import DispatchPlan, plan_dispatch
from services.routing.domain.model import RoutingRules
from services.routing.domain.redispatching import (
    CLOSED, OPEN, RETURNED, Occasion, RoutedCase, check_manual_dispatch, plan_redispatch, recalled_holder,
)

log = logging.getLogger(__name__)

SOURCE = "routing"
CASES_CONSUMER = "routing:cases"


@dataclass(frozen=True)
class Dispatched:
    """A dispatch that was recorded: its plan, its case.dispatched, and the holder it recalled."""

    case_no: str
    plan: DispatchPlan
    event: Envelope
    previous_owner: str | None


class Dispatcher:
    """Decides terms, records the dispatch, keeps routed_cases and emits the events, in the caller's unit of work."""

    def __init__(self, topics: Topics, street_rules: StreetRules):
        self._topics = topics
        self._rules = street_store.RulesCache()
        self._street_rules = street_rules

    async def rules(self, conn: asyncpg.Connection) -> tuple[RoutingRules, WorkCalendar]:
        """The street's rules and its work calendar, as of this transaction. The work periods are those of the
        street configuration in force (learnt from supervision), so a task's due_at is the handling clock's."""
        rules, overrides = await self._rules.get(conn)
        config = await self._street_rules.current(conn)
        return rules, WorkCalendar(zone=street_zone(), periods=config.periods, overrides=overrides)

    async def first(self, uow: UnitOfWork, case_id: str, accepted: CaseAccepted, cause_id: str) -> Dispatched | None:
        """The first dispatch of an accepted case, by the rules; None if the case had one already."""
        if await dispatch_store.is_dispatched(uow.conn, case_id):
            log.info("case %s (%s) already dispatched; %s ignored", accepted.case_no, case_id, cause_id)
            return None
        holder_of_number = await case_store.case_id_of(uow.conn, accepted.case_no)
        if holder_of_number is not None and holder_of_number != case_id:
            raise InvalidMessage(f"case number {accepted.case_no} already belongs to case {holder_of_number}, "
                                 f"not {case_id}: case numbers must be unique")
        rules, calendar = await self.rules(uow.conn)
        plan = plan_dispatch(rules, calendar, category=accepted.category, unit_grid=accepted.unit_grid,
                             dispatched_at=now())
        case = RoutedCase(
            case_id=case_id, case_no=accepted.case_no, category=accepted.category, unit_grid=accepted.unit_grid,
            description=accepted.description,
            location=accepted.location.model_dump() if accepted.location else None,
            address=accepted.address, media=list(accepted.media), holder=None, status=OPEN,
        )
        done = await self._record_and_emit(uow, case, plan, occasion="first", note=None, by="system",
                                           cause_id=cause_id, recalled=None)
        if done is not None:
            await case_store.add(uow.conn, case_id, accepted, plan.assignment.owner.code)
        return done

    async def again(
        self, uow: UnitOfWork, case: RoutedCase, *, owner_code: str, occasion: Occasion, note: str, by: str,
        cause_id: str,
    ) -> Dispatched | None:
        """Dispatch a known case to a chosen owner with a fresh limit from now; the holder, if another
        owner, is recalled. None if this cause dispatched already."""
        rules, calendar = await self.rules(uow.conn)
        last = await dispatch_store.last_terms(uow.conn, case.case_id)
        plan = plan_redispatch(rules, calendar, category=case.category, owner_code=owner_code, last=last,
                               dispatched_at=now())
        recalled = recalled_holder(case.holder, owner_code)
        done = await self._record_and_emit(uow, case, plan, occasion=occasion, note=note, by=by,
                                           cause_id=cause_id, recalled=recalled)
        if done is not None:
            await case_store.set_holder(uow.conn, case.case_id, owner_code, OPEN)
        return done

    async def _record_and_emit(
        self, uow: UnitOfWork, case: RoutedCase, plan: DispatchPlan, *, occasion: Occasion, note: str | None,
        by: str, cause_id: str, recalled: str | None,
    ) -> Dispatched | None:
        a = plan.assignment
        dispatched = _envelope(case.case_id, plan, CaseDispatched(
            case_no=case.case_no, owner=a.owner.code, owner_name=a.owner.name or None, category=case.category,
            unit_grid=case.unit_grid, priority=a.priority, time_limit={"value": a.limit.value, "unit": a.limit.unit},
            dispatched_at=plan.dispatched_at, due_at=plan.due_at, occasion=occasion, note=note, by=by,
            previous_owner=recalled,
            manual_reason=a.manual_reason,  # beyond the contract's fields (allowed): why the command center got it
        ))
        recorded = await dispatch_store.record_dispatch(
            uow.conn, case_id=case.case_id, case_no=case.case_no, category=case.category, unit_grid=case.unit_grid,
            plan=plan, cause_id=cause_id, event_id=dispatched.id, occasion=occasion, note=note, by=by,
            previous_owner=recalled,
        )
        if not recorded:  # this cause dispatched already, or another acceptance won the first dispatch
            return None
        if recalled is not None:
            # Before the new assignment: the old holder hears it must stop no later than the new one starts.
            uow.emit(self._topics.tasks(recalled), _envelope(case.case_id, plan, TaskRecalled(
                case_no=case.case_no, owner=recalled, reason=note or occasion, new_owner=a.owner.code,
            )))
        uow.emit(self._topics.cases, dispatched)
        uow.emit(self._topics.tasks(a.owner.code), _envelope(case.case_id, plan, TaskAssigned(
            case_no=case.case_no, owner=a.owner.code, category=case.category, category_name=a.category_name,
            description=case.description, unit_grid=case.unit_grid, location=case.location, address=case.address,
            media=case.media, due_at=plan.due_at, priority=a.priority, occasion=occasion, note=note,
            manual_reason=a.manual_reason,
        )))
        uow.after_commit(lambda: log.info(
            "case %s dispatched (%s) to %s (%s), due %s%s%s", case.case_no, occasion, a.owner.code, a.owner.name,
            plan.due_at.isoformat(), f", recalled from {recalled}" if recalled else "",
            f" — {a.manual_reason}" if a.manual_reason else "",
        ))
        return Dispatched(case.case_no, plan, dispatched, recalled)


def _envelope(case_id: str, plan: DispatchPlan, event: EventModel) -> Envelope:
    return event.envelope(source=SOURCE, case_id=case_id, occurred_at=plan.dispatched_at)


class CaseEvents:
    """Handles wangge.cases: dispatches accepted cases and follows what supervision decides after that."""

    TYPES = frozenset({CaseAccepted.TYPE, CaseReturned.TYPE, CaseReworked.TYPE, CaseReopened.TYPE, CaseClosed.TYPE})

    def __init__(self, dispatcher: Dispatcher):
        self._dispatcher = dispatcher
        self._handlers: dict[str, Callable[[str, Envelope, EventModel, UnitOfWork], Awaitable[None]]] = {
            CaseAccepted.TYPE: self._accepted,
            CaseReturned.TYPE: self._returned,
            CaseReworked.TYPE: self._reworked,
            CaseReopened.TYPE: self._reopened,
            CaseClosed.TYPE: self._closed,
        }

    async def __call__(self, envelope: Envelope, uow: UnitOfWork) -> None:
        """Apply one case event once; other case events are another service's business."""
        handle = self._handlers.get(envelope.type)
        if handle is None:
            return
        event = parse_event(envelope)  # InvalidMessage → wangge.cases.rejected with the reason
        if not envelope.case_id:
            raise InvalidMessage(f"{envelope.type} without case_id: the envelope must name the case")
        if not await uow.claim(CASES_CONSUMER, envelope.id):
            return
        await handle(envelope.case_id, envelope, event, uow)

    async def _accepted(self, case_id: str, envelope: Envelope, event: EventModel, uow: UnitOfWork) -> None:
        assert isinstance(event, CaseAccepted)
        if event.resolved_on_the_spot is not None:
            # 自行处置: the coordinator fixed it already; supervision closes it. Nobody gets a task.
            log.info("case %s fixed on the spot by its coordinator: not dispatched", event.case_no)
            return
        await self._dispatcher.first(uow, case_id, event, envelope.id)

    async def _returned(self, case_id: str, envelope: Envelope, event: EventModel, uow: UnitOfWork) -> None:
        assert isinstance(event, CaseReturned)
        case = await case_store.get(uow.conn, case_id, lock=True)
        if case is None or case.holder != event.owner:
            # An operator re-dispatched it (or it closed) before the return reached us: the owner that
            # returned it holds nothing any more, and the current holder keeps it.
            log.info("case %s returned by %s, who does not hold it (holder %s): nothing to change",
                     event.case_no, event.owner, case.holder if case else "unknown to routing")
            return
        await case_store.set_holder(uow.conn, case_id, None, RETURNED)

    # Rework and reopening dispatch by rule, not by anyone's hand: the dispatch is by "system"; who
    # failed the check (or that the resident reopened it) is on the case.reworked / case.reopened itself.
    async def _reworked(self, case_id: str, envelope: Envelope, event: EventModel, uow: UnitOfWork) -> None:
        assert isinstance(event, CaseReworked)
        case = await self._known(case_id, envelope, event.case_no, uow)
        await self._dispatcher.again(uow, case, owner_code=event.owner, occasion="rework", note=event.note,
                                     by="system", cause_id=envelope.id)

    async def _reopened(self, case_id: str, envelope: Envelope, event: EventModel, uow: UnitOfWork) -> None:
        assert isinstance(event, CaseReopened)
        case = await self._known(case_id, envelope, event.case_no, uow)
        await self._dispatcher.again(uow, case, owner_code=event.owner, occasion="reopen", note=event.reason,
                                     by="system", cause_id=envelope.id)

    async def _closed(self, case_id: str, envelope: Envelope, event: EventModel, uow: UnitOfWork) -> None:
        assert isinstance(event, CaseClosed)
        if await case_store.get(uow.conn, case_id, lock=True) is None:
            log.info("case %s closed, but routing never dispatched it: nothing to change", event.case_no)
            return
        await case_store.set_holder(uow.conn, case_id, None, CLOSED)

    @staticmethod
    async def _known(case_id: str, envelope: Envelope, case_no: str, uow: UnitOfWork) -> RoutedCase:
        case = await case_store.get(uow.conn, case_id, lock=True)
        if case is None:
            raise InvalidMessage(f"{envelope.type} for case {case_no} ({case_id}), which routing never dispatched: "
                                 "there is no case to send back to its owner")
        return case


class CaseNotRouted(LookupError):
    """The case number is not one routing has dispatched."""


class ManualDispatch:
    """An operator sends a case to an owner by hand; a current holder is recalled. One unit of work."""

    def __init__(self, runtime: ServiceRuntime, dispatcher: Dispatcher):
        self._runtime = runtime
        self._dispatcher = dispatcher

    async def __call__(self, case_no: str, *, owner: str, reason: str, by: str) -> Dispatched:
        """Dispatch or raise CaseNotRouted / ManualDispatchRefused."""
        async with self._runtime.uow() as uow:
            # The row lock orders this against the consumer applying a return or a rework of the same case.
            case = await case_store.get_by_no(uow.conn, case_no, lock=True)
            if case is None:
                raise CaseNotRouted(case_no)
            rules, _calendar = await self._dispatcher.rules(uow.conn)
            check_manual_dispatch(case, owner, rules)
            done = await self._dispatcher.again(uow, case, owner_code=owner, occasion="manual", note=reason, by=by,
                                                cause_id=f"command:{uuid.uuid4()}")
            assert done is not None, "a fresh command id cannot have caused a dispatch before"
            await uow.commit()
        return done

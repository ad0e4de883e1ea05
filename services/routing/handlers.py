"""Handlers: dispatching accepted cases, following their returns, reworks, reopenings and closing,
and the operators' manual dispatch. Every dispatch goes through one Dispatcher.

Each handler takes a run of one event type from a partition's batch as a set (shared/messagebus.py): the first
dispatches of a batch are a few statements whatever its size, not a few per case. The bus (bootstrap.py) hands in
the dispatcher; the time comes from its clock.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import asyncpg

from shared.clock import Clock, street_zone
from shared.contracts import Envelope, InvalidMessage
from shared.contracts.cases import (
    CaseAccepted, CaseClosed, CaseDispatched, CaseReopened, CaseReturned, CaseReworked,
)
from shared.contracts.registry import EventModel
from shared.contracts.tasks import TaskAssigned, TaskRecalled
from shared.messagebus import Message
from shared.street_rules import StreetRules
from shared.topics import Topics
from shared.uow import UnitOfWork
from shared.worktime import WorkCalendar
from services.routing.adapters import case_store, dispatch_store, street_store
from services.routing.adapters.dispatch_store import DispatchRow
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


@dataclass(frozen=True)
class _Pending:
    """A dispatch decided, not yet recorded: what record_dispatches takes and what is emitted if it is."""

    case: RoutedCase
    row: DispatchRow
    dispatched: Envelope
    recalled: str | None


class Dispatcher:
    """Decides terms, records the dispatch, keeps routed_cases and emits the events, in the caller's unit of work."""

    def __init__(self, topics: Topics, street_rules: StreetRules, clock: Clock):
        self._topics = topics
        self._rules = street_store.RulesCache()
        self._street_rules = street_rules
        self._clock = clock

    async def rules(self, conn: asyncpg.Connection) -> tuple[RoutingRules, WorkCalendar]:
        """The street's rules and its work calendar, as of this transaction. The work periods are those of the
        street configuration in force (learnt from supervision), so a task's due_at is the handling clock's."""
        rules, overrides = await self._rules.get(conn)
        config = await self._street_rules.current(conn)
        return rules, WorkCalendar(zone=street_zone(), periods=config.periods, overrides=overrides)

    async def first_all(self, uow: UnitOfWork, accepted: list[Message[CaseAccepted]]) -> list[Dispatched]:
        """The first dispatch of each accepted case, by the rules: cases dispatched before are left alone. A case
        number that another case carries already is refused (InvalidMessage: the consumer sets that message aside
        alone)."""
        conn = uow.conn
        done_before = await dispatch_store.dispatched_among(conn, [m.case_id for m in accepted])
        holders = await case_store.case_ids_of(conn, [m.event.case_no for m in accepted])
        rules, calendar = await self.rules(conn)
        at = self._clock.now()
        pending: list[_Pending] = []
        for message in accepted:
            event, case_id = message.event, message.case_id
            if case_id in done_before:
                log.info("case %s (%s) already dispatched; %s ignored", event.case_no, case_id, message.id)
                continue
            holder_of_number = holders.setdefault(event.case_no, case_id)
            if holder_of_number != case_id:
                raise InvalidMessage(f"case number {event.case_no} already belongs to case {holder_of_number}, "
                                     f"not {case_id}: case numbers must be unique")
            done_before.add(case_id)  # a second acceptance of the case in this batch dispatches nothing
            plan = plan_dispatch(rules, calendar, category=event.category, unit_grid=event.unit_grid, dispatched_at=at)
            case = RoutedCase(
                case_id=case_id, case_no=event.case_no, category=event.category, unit_grid=event.unit_grid,
                description=event.description, location=event.location.model_dump() if event.location else None,
                address=event.address, media=list(event.media), holder=plan.assignment.owner.code, status=OPEN,
            )
            pending.append(self._decide(case, plan, occasion="first", note=None, by="system", cause_id=message.id,
                                        recalled=None))
        done = await self._record_and_emit(uow, pending)
        recorded = {d.event.case_id for d in done}
        await case_store.add_all(conn, [p.case for p in pending if p.case.case_id in recorded])
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
                               dispatched_at=self._clock.now())
        recalled = recalled_holder(case.holder, owner_code)
        done = await self._record_and_emit(uow, [self._decide(case, plan, occasion=occasion, note=note, by=by,
                                                              cause_id=cause_id, recalled=recalled)])
        if not done:
            return None
        await case_store.set_holder(uow.conn, case.case_id, owner_code, OPEN)
        return done[0]

    def _decide(self, case: RoutedCase, plan: DispatchPlan, *, occasion: Occasion, note: str | None, by: str,
                cause_id: str, recalled: str | None) -> _Pending:
        a = plan.assignment
        dispatched = _envelope(case.case_id, plan, CaseDispatched(
            case_no=case.case_no, owner=a.owner.code, owner_name=a.owner.name or None, category=case.category,
            unit_grid=case.unit_grid, priority=a.priority, time_limit={"value": a.limit.value, "unit": a.limit.unit},
            dispatched_at=plan.dispatched_at, due_at=plan.due_at, occasion=occasion, note=note, by=by,
            previous_owner=recalled,
            manual_reason=a.manual_reason,  # beyond the contract's fields (allowed): why the command center got it
        ))
        row = DispatchRow(case_id=case.case_id, case_no=case.case_no, category=case.category,
                          unit_grid=case.unit_grid, plan=plan, cause_id=cause_id, event_id=dispatched.id,
                          occasion=occasion, note=note, by=by, previous_owner=recalled)
        return _Pending(case, row, dispatched, recalled)

    async def _record_and_emit(self, uow: UnitOfWork, pending: list[_Pending]) -> list[Dispatched]:
        """Record the dispatches in one statement and emit, for each recorded, its events in order. A cause that
        dispatched already, or a first dispatch that another acceptance won, records and emits nothing."""
        recorded = await dispatch_store.record_dispatches(uow.conn, [p.row for p in pending])
        done: list[Dispatched] = []
        for p in pending:
            if p.row.cause_id not in recorded:
                continue
            case, plan, a, recalled, note, occasion = p.case, p.row.plan, p.row.plan.assignment, p.recalled, \
                p.row.note, p.row.occasion
            if recalled is not None:
                # Before the new assignment: the old holder hears it must stop no later than the new one starts.
                uow.emit(self._topics.tasks(recalled), _envelope(case.case_id, plan, TaskRecalled(
                    case_no=case.case_no, owner=recalled, reason=note or occasion, new_owner=a.owner.code,
                )))
            uow.emit(self._topics.cases, p.dispatched)
            uow.emit(self._topics.tasks(a.owner.code), _envelope(case.case_id, plan, TaskAssigned(
                case_no=case.case_no, owner=a.owner.code, category=case.category, category_name=a.category_name,
                description=case.description, unit_grid=case.unit_grid, location=case.location, address=case.address,
                media=case.media, due_at=plan.due_at, priority=a.priority, occasion=occasion, note=note,
                manual_reason=a.manual_reason,
            )))
            uow.after_commit(lambda c=case, a=a, plan=plan, recalled=recalled, occasion=occasion: log.info(
                "case %s dispatched (%s) to %s (%s), due %s%s%s", c.case_no, occasion, a.owner.code, a.owner.name,
                plan.due_at.isoformat(), f", recalled from {recalled}" if recalled else "",
                f" — {a.manual_reason}" if a.manual_reason else "",
            ))
            done.append(Dispatched(case.case_no, plan, p.dispatched, recalled))
        return done


def _envelope(case_id: str, plan: DispatchPlan, event: EventModel) -> Envelope:
    return event.envelope(source=SOURCE, case_id=case_id, occurred_at=plan.dispatched_at)


# ---- the handlers the bus calls (bootstrap.py registers them by type) ----------------------------------------------

async def dispatch_first(messages: list[Message[CaseAccepted]], uow: UnitOfWork, dispatcher: Dispatcher) -> None:
    """Accepted cases go to their owners by the rules — except those their coordinator fixed on the spot (自行处置:
    supervision closes them; nobody gets a task)."""
    for m in messages:
        if m.event.resolved_on_the_spot is not None:
            log.info("case %s fixed on the spot by its coordinator: not dispatched", m.event.case_no)
    await dispatcher.first_all(uow, [m for m in messages if m.event.resolved_on_the_spot is None])


async def hold_returned(messages: list[Message[CaseReturned]], uow: UnitOfWork) -> None:
    """A case its owner returned is held by nobody until the command center sends it on."""
    for m in messages:
        case = await case_store.get(uow.conn, m.case_id, lock=True)
        if case is None or case.holder != m.event.owner:
            # An operator re-dispatched it (or it closed) before the return reached us: the owner that
            # returned it holds nothing any more, and the current holder keeps it.
            log.info("case %s returned by %s, who does not hold it (holder %s): nothing to change",
                     m.event.case_no, m.event.owner, case.holder if case else "unknown to routing")
            continue
        await case_store.set_holder(uow.conn, m.case_id, None, RETURNED)


# Rework and reopening dispatch by rule, not by anyone's hand: the dispatch is by "system"; who
# failed the check (or that the resident reopened it) is on the case.reworked / case.reopened itself.
async def dispatch_rework(messages: list[Message[CaseReworked]], uow: UnitOfWork, dispatcher: Dispatcher) -> None:
    """A case that failed its check goes back to the owner named, with a fresh limit."""
    for m in messages:
        case = await _known(m, uow)
        await dispatcher.again(uow, case, owner_code=m.event.owner, occasion="rework", note=m.event.note,
                               by="system", cause_id=m.id)


async def dispatch_reopened(messages: list[Message[CaseReopened]], uow: UnitOfWork, dispatcher: Dispatcher) -> None:
    """A case the resident reopened goes back to the owner named, with a fresh limit."""
    for m in messages:
        case = await _known(m, uow)
        await dispatcher.again(uow, case, owner_code=m.event.owner, occasion="reopen", note=m.event.reason,
                               by="system", cause_id=m.id)


async def mark_closed(messages: list[Message[CaseClosed]], uow: UnitOfWork) -> None:
    """A closed case is held by nobody."""
    for m in messages:
        if await case_store.get(uow.conn, m.case_id, lock=True) is None:
            log.info("case %s closed, but routing never dispatched it: nothing to change", m.event.case_no)
            continue
        await case_store.set_holder(uow.conn, m.case_id, None, CLOSED)


async def _known(message: Message[CaseReworked] | Message[CaseReopened], uow: UnitOfWork) -> RoutedCase:
    case = await case_store.get(uow.conn, message.case_id, lock=True)
    if case is None:
        raise InvalidMessage(f"{message.envelope.type} for case {message.event.case_no} ({message.case_id}), which "
                             "routing never dispatched: there is no case to send back to its owner")
    return case


class CaseNotRouted(LookupError):
    """The case number is not one routing has dispatched."""


@dataclass(frozen=True)
class DispatchByHand:
    """派遣/改派: an operator sends a case to an owner by hand (a command on the bus)."""

    case_no: str
    owner: str
    reason: str
    by: str


async def dispatch_by_hand(command: DispatchByHand, uow: UnitOfWork, dispatcher: Dispatcher) -> Dispatched:
    """Dispatch, recalling a current holder; or raise CaseNotRouted / ManualDispatchRefused."""
    # The row lock orders this against the consumer applying a return or a rework of the same case.
    case = await case_store.get_by_no(uow.conn, command.case_no, lock=True)
    if case is None:
        raise CaseNotRouted(command.case_no)
    rules, _calendar = await dispatcher.rules(uow.conn)
    check_manual_dispatch(case, command.owner, rules)
    done = await dispatcher.again(uow, case, owner_code=command.owner, occasion="manual", note=command.reason,
                                  by=command.by, cause_id=f"command:{uuid.uuid4()}")
    assert done is not None, "a fresh command id cannot have caused a dispatch before"
    return done

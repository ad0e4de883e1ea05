"""The command center's decisions on a case, as commands on supervision's bus: the on-site check (核查), an
extension's decision (延期审批), suspension and resumption (挂起/恢复), and urging by hand (督办).

HTTP (entrypoints/http.py) builds a command and hands it to the bus (`bus.handle(command)`), which runs its handler
in a unit of work of its own and commits it. A refusal is an Outcome with the reason; nothing is written then.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.supervision.adapters import case_store
from services.supervision.case_log import CaseLog
from services.supervision.domain.decisions import Refused, decide_check, decide_extension, decide_suspension, decide_urge
from services.supervision.domain.notices import urged_text
from services.supervision.domain.overdue import is_overdue
from services.supervision.domain.policy import StreetPolicy
from services.supervision.domain.states import EVENT_TARGETS
from services.supervision.handlers import SERVICE, Outcome, resumed_due
from shared.contracts import EventModel
from shared.contracts import cases as c
from shared.contracts import tasks as t
from shared.personal_data import mask_personal
from shared.topics import Topics
from shared.uow import UnitOfWork


@dataclass(frozen=True)
class CheckCase:
    """核查: pass closes a resolved/explained case (the resident gets the resolution); fail sends it back.
    `grids`: a coordinator checks only the cases of their unit grids (None: an operator, any case)."""

    case_no: str
    passed: bool
    note: str | None
    by: str
    media: tuple[str, ...] = ()
    grids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DecideExtension:
    """延期审批: approved moves the deadline (to `until`, or what the owner asked for); the owner hears either way."""

    case_no: str
    approved: bool
    until: datetime | None
    note: str | None
    by: str


@dataclass(frozen=True)
class SuspendCase:
    """挂起 (suspend) / 恢复 (not suspend) by the command center (owners do the same with task.suspended / resumed)."""

    case_no: str
    suspend: bool
    reason: str | None
    by: str


@dataclass(frozen=True)
class UrgeCase:
    """督办 by hand: case.urged in the history (and the figures), task.urged with the note to the holder."""

    case_no: str
    note: str
    by: str


async def check_case(command: CheckCase, uow: UnitOfWork, case_log: CaseLog, policy: StreetPolicy) -> Outcome:
    note = mask_personal(command.note) if command.note else command.note
    row = await case_store.lock_case(uow.conn, case_no=command.case_no)
    case = case_store.snapshot(row)
    decision = decide_check(case, command.case_no, command.passed, command.grids)
    if isinstance(decision, Refused):
        return Outcome(case.state if case else None, refused=decision)
    assert case is not None and row is not None
    owner = case.owner or policy.command_center
    media = list(command.media)
    if command.passed:
        outcome = "explained" if case.state == "explained" else "resolved"
        result = (row["explanation"] if outcome == "explained" else row["result"]) or ""
        on_time = row["resolved_at"] is not None and case.due_at is not None and row["resolved_at"] <= case.due_at
        event: EventModel = c.CaseClosed(case_no=command.case_no, owner=owner, outcome=outcome, result=result,
                                         note=note, by=command.by, closed_at=case_log.clock.now(), on_time=on_time,
                                         media=media)
    else:
        event = c.CaseReworked(case_no=command.case_no, owner=owner, note=note or "核查未通过", by=command.by,
                               media=media)
    await case_log.emit(uow, event, case.case_id)
    return Outcome(EVENT_TARGETS[decision.event_type], decision.event_type)


async def decide_extension_request(command: DecideExtension, uow: UnitOfWork, case_log: CaseLog,
                                   policy: StreetPolicy, topics: Topics) -> Outcome:
    note = mask_personal(command.note) if command.note else command.note
    row = await case_store.lock_case(uow.conn, case_no=command.case_no)
    case = case_store.snapshot(row)
    until = command.until or (row["extension_until"] if row is not None else None)
    decision = decide_extension(case, command.case_no, command.approved, until)
    if isinstance(decision, Refused):
        return Outcome(case.state if case else None, refused=decision)
    assert case is not None and case.due_at is not None and until is not None
    due = policy.local(until if command.approved else case.due_at)
    owner = case.owner or policy.command_center
    await case_log.emit(uow, c.CaseExtensionDecided(case_no=command.case_no, owner=owner, approved=command.approved,
                                                    due_at=due, note=note, by=command.by), case.case_id)
    told = t.TaskExtensionDecided(case_no=command.case_no, owner=owner, approved=command.approved, due_at=due,
                                  note=note)
    uow.emit(topics.tasks(owner), told.envelope(source=SERVICE, case_id=case.case_id))
    return Outcome(case.state, decision.event_type, due_at=due)


async def suspend_case(command: SuspendCase, uow: UnitOfWork, case_log: CaseLog, policy: StreetPolicy) -> Outcome:
    reason = mask_personal(command.reason) if command.reason else command.reason
    row = await case_store.lock_case(uow.conn, case_no=command.case_no)
    case = case_store.snapshot(row)
    decision = decide_suspension(case, command.case_no, command.suspend)
    if isinstance(decision, Refused):
        return Outcome(case.state if case else None, refused=decision)
    assert case is not None
    owner = case.owner or policy.command_center
    due = None
    if command.suspend:
        event: EventModel = c.CaseSuspended(case_no=command.case_no, owner=owner, reason=reason or "", by=command.by)
    else:
        due = await resumed_due(uow, case_log, case.case_id, case.due_at)
        event = c.CaseResumed(case_no=command.case_no, owner=owner, by=command.by, due_at=due)
    await case_log.emit(uow, event, case.case_id)
    return Outcome(EVENT_TARGETS[decision.event_type], decision.event_type, due_at=due)


async def urge_case(command: UrgeCase, uow: UnitOfWork, case_log: CaseLog, policy: StreetPolicy,
                    topics: Topics) -> Outcome:
    note = mask_personal(command.note.strip())
    row = await case_store.lock_case(uow.conn, case_no=command.case_no)
    case = case_store.snapshot(row)
    decision = decide_urge(case, command.case_no)
    if isinstance(decision, Refused):
        return Outcome(case.state if case else None, refused=decision)
    assert case is not None and row is not None and case.owner is not None and case.due_at is not None
    due = policy.local(case.due_at)
    overdue = is_overdue(case.state, case.due_at, case.went_overdue, case_log.clock.now())
    await case_log.emit(uow, c.CaseUrged(case_no=command.case_no, owner=case.owner, note=note, by=command.by,
                                         overdue=overdue), case.case_id)
    label = policy.category_label(row["category"]) if row["category"] else "待分类"
    told = t.TaskUrged(case_no=command.case_no, owner=case.owner, level="overdue" if overdue else "reminder",
                       due_at=due, text=urged_text(command.case_no, label, due, note, overdue), note=note)
    uow.emit(topics.tasks(case.owner), told.envelope(source=SERVICE, case_id=case.case_id))
    return Outcome(case.state, decision.event_type)

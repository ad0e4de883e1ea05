"""A batch of case events folded in memory, in order, into what the database is to be told. Pure.

The set-based case log (services/supervision/case_log.py) reads the batch's cases once, hands them here with the
events, and writes the plan with a few multi-row statements: every history row together, every case row together,
the clocks in layers (the first clock change of each case together, then the second…), so a case's changes keep
their order while the statements do not grow with the batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Sequence

from services.supervision.domain import clocks
from services.supervision.domain.policy import StreetPolicy
from services.supervision.domain.read_model import COLUMNS, INCREMENT, case_columns, without_contacts
from services.supervision.domain.states import Fold, next_state
from shared.contracts import cases as c
from shared.messagebus import Message

# The kinds of clock (services/supervision/adapters/clock_store.py names them too; kept here so the domain stays pure).
HANDLING, DISPATCH, SIGN, CHECK = "handling", "dispatch", "sign", "check"
# The poller's own notices: figures of their own day only (went_overdue), no key of the case changed.
DEADLINE_NOTICES = frozenset({"case.warned", "case.overdue", "case.escalated"})
# The read model's counters: an event adds one (read_model.INCREMENT) instead of setting them.
COUNTERS = ("reopened_count", "dispatch_count", "rework_count")


@dataclass
class CaseView:
    """What the fold knows of a case while it goes through the batch (read once, locked, then kept up to date)."""

    state: str | None
    case_no: str | None
    category: str | None
    known: bool  # it has a row already


@dataclass
class CaseRow:
    """One case's changes of the whole batch, merged: the later event's value wins, counters add up."""

    case_id: str
    case_no: str | None
    state: str | None
    last_event_at: datetime
    events_seen: int = 0
    columns: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {**self.columns, "case_id": self.case_id, "case_no": self.case_no, "state": self.state,
                "last_event_at": self.last_event_at, "events_seen": self.events_seen}


OpKind = Literal["open", "stop", "suspend", "resume", "move"]


@dataclass(frozen=True)
class ClockOp:
    """One change of a case's clocks. open/stop are written for all cases of a layer at once; suspend, resume and
    move read the clock first (rare: supervision decides those events itself, folding them one at a time)."""

    kind: OpKind
    case_id: str
    rows: tuple[dict[str, Any], ...] = ()  # open: the clocks; stop: (case_id, kind, at, reason)
    at: datetime | None = None
    due_at: datetime | None = None


@dataclass
class Plan:
    folds: list[tuple[Message[Any], Fold]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    cases: dict[str, CaseRow] = field(default_factory=dict)
    clock_ops: list[ClockOp] = field(default_factory=list)
    marked: list[str] = field(default_factory=list)  # cases whose past days' figures may change
    assumed: list[str] = field(default_factory=list)  # clock kinds opened on a calendar year nobody filled in
    new_cases: list[str] = field(default_factory=list)  # cases without a row yet

    def layers(self) -> list[list[ClockOp]]:
        """The clock changes cut into layers: layer k holds each case's k-th change. Changes of different cases
        touch different rows, so a layer can be written in any order; a case's own keep theirs."""
        layers: list[list[ClockOp]] = []
        seen: dict[str, int] = {}
        for op in self.clock_ops:
            k = seen.get(op.case_id, 0)
            seen[op.case_id] = k + 1
            if k == len(layers):
                layers.append([])
            layers[k].append(op)
        return layers


def plan_batch(messages: Sequence[Message[Any]], views: dict[str, CaseView], policy: StreetPolicy,
               today: date) -> Plan:
    """Fold the messages in order into their cases (views, updated in place) and plan the writes."""
    plan = Plan()
    zone = policy.calendar.zone
    marked: set[str] = set()
    for message in messages:
        envelope, event, case_id = message.envelope, message.event, message.case_id
        view = views.setdefault(case_id, CaseView(None, None, None, known=False))
        fold = next_state(view.state, envelope.type)
        plan.folds.append((message, fold))
        columns = case_columns(event, envelope.type, envelope.occurred_at) if fold.applies else {}
        case_no = getattr(event, "case_no", None) or _text(envelope.data.get("case_no"))
        row = plan.cases.get(case_id)
        if row is None:
            row = plan.cases[case_id] = CaseRow(case_id, case_no, fold.state, envelope.occurred_at)
        _merge(row, case_no, fold.state, envelope.occurred_at, columns)
        view.state, view.case_no = fold.state, view.case_no or case_no
        if "category" in columns:
            view.category = columns["category"]
        plan.history.append({
            "event_id": envelope.id, "case_id": case_id, "type": envelope.type, "version": envelope.version,
            "occurred_at": envelope.occurred_at, "source": envelope.source, "data": without_contacts(envelope.data),
            "effect": fold.effect, "state_after": fold.state, "note": fold.reason,
        })
        # The kept days this case's figures are dated by may change (docs/STATISTICS.md, "Kept per day"), except
        # for the poller's own notices of today: they count on today alone and change no key of the case.
        if not (envelope.type in DEADLINE_NOTICES and envelope.occurred_at.astimezone(zone).date() == today):
            if case_id not in marked:
                marked.add(case_id)
                plan.marked.append(case_id)
        if fold.applies:
            plan.clock_ops.extend(_clock_ops(message, fold, view, policy, plan))
    plan.new_cases = [case_id for case_id in plan.cases if not views[case_id].known]
    return plan


def _merge(row: CaseRow, case_no: str | None, state: str | None, at: datetime, columns: dict[str, Any]) -> None:
    unknown = set(columns) - set(COLUMNS)
    if unknown:  # the names go into SQL text: only the read model's own
        raise ValueError(f"not read-model columns: {sorted(unknown)}")
    row.case_no = row.case_no or case_no
    row.state = state
    row.last_event_at = max(row.last_event_at, at)
    row.events_seen += 1
    for name, value in columns.items():
        if value is INCREMENT:
            if name not in COUNTERS:
                raise ValueError(f"{name} is no counter of the read model")
            row.columns[name] = row.columns.get(name, 0) + 1
        else:
            row.columns[name] = value


def _clock_ops(message: Message[Any], fold: Fold, view: CaseView, policy: StreetPolicy, plan: Plan) -> list[ClockOp]:
    """The clock changes an applied event makes: open, stop, suspend, resume or move (what each means:
    domain/clocks.py)."""
    envelope, event, case_id, at = message.envelope, message.event, message.case_id, message.envelope.occurred_at
    if isinstance(event, c.CaseReported) and fold.effect == "moved":
        return [_open_stage(plan, policy, DISPATCH, case_id, event.case_no, policy.command_center,
                            event.category or "", at, envelope.id)]
    if fold.effect != "moved":
        if isinstance(event, c.CaseExtensionDecided) and event.approved:
            return [ClockOp("move", case_id, due_at=event.due_at)]
        return []
    ops: list[ClockOp] = []
    stopping = []
    if fold.state in clocks.DISPATCH_STAGE_ENDS:
        stopping.append(DISPATCH)
    # Stage clocks stop when the case leaves the state they wait in (a re-dispatch restarts sign below).
    if fold.state not in clocks.SIGN_STAGE_STATES:
        stopping.append(SIGN)
    if fold.state not in clocks.CHECK_STAGE_STATES:
        stopping.append(CHECK)
    if (not isinstance(event, (c.CaseDispatched, c.CaseSuspended, c.CaseResumed))
            and not clocks.clock_runs_in(fold.state)):
        stopping.append(HANDLING)
    if stopping:  # a dispatch stops neither sign nor handling: it opens them
        ops.append(ClockOp("stop", case_id, rows=tuple(
            {"case_id": case_id, "kind": kind, "at": at, "reason": fold.state or "unknown"} for kind in stopping)))
    if isinstance(event, c.CaseDispatched):
        assumed = policy.calendar.assumed_between(event.dispatched_at, event.due_at)
        if assumed:
            plan.assumed.append(HANDLING)
        handling = {
            "case_id": case_id, "kind": HANDLING, "case_no": event.case_no, "owner": event.owner,
            "category": event.category, "limit_value": event.time_limit.value, "limit_unit": event.time_limit.unit,
            "started_at": event.dispatched_at, "due_at": event.due_at, "opened_by": envelope.id,
            "warn_at": policy.warn_at(event.dispatched_at, event.time_limit.value, event.time_limit.unit,
                                      event.due_at), "calendar_assumed": assumed}
        sign = _open_stage(plan, policy, SIGN, case_id, event.case_no, event.owner, event.category,
                           event.dispatched_at, envelope.id)
        ops.append(ClockOp("open", case_id, rows=(handling, *sign.rows)))
    elif isinstance(event, c.CaseSuspended):
        ops.append(ClockOp("suspend", case_id, at=at))
    elif isinstance(event, c.CaseResumed):
        ops.append(ClockOp("resume", case_id, at=at, due_at=event.due_at))
    if isinstance(event, (c.CaseResolved, c.CaseExplained)) and fold.state in clocks.CHECK_STAGE_STATES:
        ops.append(_open_stage(plan, policy, CHECK, case_id, event.case_no, policy.command_center,
                               view.category or "", at, envelope.id))
    return ops


def _open_stage(plan: Plan, policy: StreetPolicy, stage: str, case_id: str, case_no: str, owner: str, category: str,
                start: datetime, opened_by: str) -> ClockOp:
    """A stage clock (dispatch, sign, check) with the street's limit for it."""
    limit = policy.stage_limit(stage)
    warn, due = policy.stage_due(stage, start)
    assumed = policy.calendar.assumed_between(start, due)
    if assumed:
        plan.assumed.append(stage)
    return ClockOp("open", case_id, rows=({
        "case_id": case_id, "kind": stage, "case_no": case_no, "owner": owner, "category": category,
        "limit_value": limit.value, "limit_unit": limit.unit, "started_at": start, "warn_at": warn, "due_at": due,
        "opened_by": opened_by, "calendar_assumed": assumed},))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None

"""What the owners and the command center may do to a case in its state, decided without I/O.

Each decision either refuses with a reason (the owner hears it as task.update-refused, the operator
as a 4xx) or names the case event to emit. Supervision is the one authority on these moves: it
holds the case's state, and each accepted move is written once, in the same transaction.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.contracts.cases import FINAL_STATES

# 签收 comes first; resolving, explaining or suspending a task presumes the owner has taken it.
UPDATE_RULES: dict[str, tuple[frozenset[str], str]] = {
    # update type: (states it is allowed in, the case event it becomes)
    "task.accepted": (frozenset({"dispatched"}), "case.signed"),
    "task.progress": (frozenset({"in_progress", "suspended"}), "case.progress-reported"),
    "task.resolved": (frozenset({"in_progress"}), "case.resolved"),
    "task.returned": (frozenset({"dispatched"}), "case.returned"),
    "task.extension-requested": (frozenset({"dispatched", "in_progress", "suspended"}), "case.extension-requested"),
    "task.explained": (frozenset({"in_progress"}), "case.explained"),
    "task.suspended": (frozenset({"in_progress"}), "case.suspended"),
    "task.resumed": (frozenset({"suspended"}), "case.resumed"),
}
STATE_NAMES = {
    "reported": "待受理", "accepted": "已立案", "dispatched": "已派遣（待签收）", "returned": "已回退",
    "in_progress": "处置中", "suspended": "已挂起", "resolved": "已处置（待核查）", "rework": "返工",
    "explained": "已解释说明（待核查）", "closed": "已结案", "reopened": "已重新打开", "rejected": "不予受理",
    "merged": "已合并",
}


@dataclass(frozen=True)
class CaseSnapshot:
    """What a decision needs to know of a case: its number, state, holder and deadline."""

    case_id: str
    case_no: str
    state: str | None
    owner: str | None
    due_at: datetime | None = None
    extension_pending: bool = False
    unit_grid: str | None = None
    went_overdue: bool = False  # the overdue mark (read model's overdue_at): domain/overdue.py


@dataclass(frozen=True)
class Refused:
    """Not allowed; `status` is the HTTP answer (404 not known / not yours, 409 not now, 422 not sensible)."""

    reason: str
    status: int = 409


@dataclass(frozen=True)
class Allowed:
    """Allowed: the case event type it becomes."""

    event_type: str


def _state_name(state: str | None) -> str:
    return f"{state}（{STATE_NAMES.get(state or '', '未知')}）"


# The longest extension a request or an approval may give, past the current deadline: a case put off for more
# than a year is not being handled (解释说明/挂账 is the way for what cannot be solved now), and the work
# calendar counts the new span.
MAX_EXTENSION = timedelta(days=366)


def _extension_problem(case: CaseSnapshot, until: datetime | None) -> Refused | None:
    """Why `until` cannot be the new deadline of this case, or None."""
    if until is None or case.due_at is None:
        return None
    if until <= case.due_at:
        return Refused(f"an extension must end after the current deadline {case.due_at.isoformat()} "
                       f"(延期须晚于当前期限)", 422)
    if until > case.due_at + MAX_EXTENSION:
        return Refused(f"an extension may reach at most {MAX_EXTENSION.days} days past the current deadline "
                       f"{case.due_at.isoformat()} (延期不得超过{MAX_EXTENSION.days}天; what cannot be solved "
                       f"within it is explained to the resident: task.explained)", 422)
    return None


def decide_update(case: CaseSnapshot | None, owner: str, update_type: str, case_no: str,
                  until: datetime | None = None) -> Allowed | Refused:
    """May `owner` apply this update to this case now?"""
    rule = UPDATE_RULES.get(update_type)
    if rule is None:
        return Refused(f"unknown update type {update_type!r}; one of {', '.join(UPDATE_RULES)}", 422)
    if case is None:
        return Refused(f"no case {case_no} is known (案件不存在)", 404)
    if case.case_no != case_no:
        return Refused(f"the update names case {case_no} but case_id belongs to {case.case_no}", 422)
    if case.owner != owner:
        # Not "held by X": an owner learns nothing about other owners' work.
        return Refused(f"case {case_no} is not a task of {owner} (非本单位任务)", 404)
    allowed, becomes = rule
    if case.state in FINAL_STATES:
        return Refused(f"case {case_no} is {_state_name(case.state)}: no update is taken after that")
    if case.state not in allowed:
        need = " or ".join(sorted(allowed))
        hint = "; sign it first (task.accepted)" if case.state == "dispatched" else ""
        return Refused(f"{update_type} is not allowed while the case is {_state_name(case.state)}; "
                       f"it needs {need}{hint}")
    if update_type == "task.extension-requested" and (problem := _extension_problem(case, until)) is not None:
        return problem
    return Allowed(becomes)


# The states in which a case waits for a dispatch (to whichever owner: the first, or again after a return, a failed
# check or a reopening). The owner reads its task on its own topic and may answer before supervision has folded the
# case's dispatch from wangge.cases: an update refused then may only have overtaken it.
AWAITING_DISPATCH = frozenset({"reported", "accepted", "returned", "rework", "reopened"})


def overtook_dispatch(case: CaseSnapshot | None, decision: Allowed | Refused) -> bool:
    """Whether a refused update may have come before the case's dispatch (held, not refused yet): the case is not
    known at all, or waits for a dispatch. A case an owner holds, or a final one, is decided at once — an update
    for another owner's task is refused then and there."""
    if not isinstance(decision, Refused) or decision.status == 422:
        return False
    return case is None or case.state is None or case.state in AWAITING_DISPATCH


def decide_check(case: CaseSnapshot | None, case_no: str, passed: bool,
                 grids: tuple[str, ...] | None = None) -> Allowed | Refused:
    """核查: pass closes a resolved or explained case; a failure sends it back for rework. `grids`: the unit grids
    of the coordinator checking (None: the command center, who checks any case)."""
    if case is None:
        return Refused(f"no case numbered {case_no} is known (案件不存在)", 404)
    if grids is not None and case.unit_grid not in grids:
        return Refused(f"case {case_no} is not in your unit grids: a coordinator checks the cases of their own grids "
                       "only (非本网格案件，无权核查)", 403)
    if case.state not in ("resolved", "explained"):
        return Refused(f"only a resolved or explained case is checked; case {case_no} is {_state_name(case.state)}")
    return Allowed("case.closed" if passed else "case.reworked")


def decide_extension(case: CaseSnapshot | None, case_no: str, approved: bool,
                     until: datetime | None) -> Allowed | Refused:
    """延期审批: only a pending request is decided; an approval needs a deadline after the current one."""
    if case is None:
        return Refused(f"no case numbered {case_no} is known (案件不存在)", 404)
    if not case.extension_pending:
        return Refused(f"case {case_no} has no extension request waiting for a decision")
    if case.state not in ("dispatched", "in_progress", "suspended"):
        return Refused(f"case {case_no} is {_state_name(case.state)}: its deadline no longer runs")
    if approved and (problem := _extension_problem(case, until)) is not None:
        return problem
    return Allowed("case.extension-decided")


def decide_suspension(case: CaseSnapshot | None, case_no: str, suspend: bool) -> Allowed | Refused:
    """挂起/恢复 by the command center: in_progress ↔ suspended."""
    if case is None:
        return Refused(f"no case numbered {case_no} is known (案件不存在)", 404)
    want = "in_progress" if suspend else "suspended"
    if case.state != want:
        return Refused(f"case {case_no} is {_state_name(case.state)}; {'suspending' if suspend else 'resuming'} "
                       f"needs {want}")
    return Allowed("case.suspended" if suspend else "case.resumed")


# 督办 by hand reaches the owner who holds the case and still owes the work. Resolved and explained cases wait
# on the command center's own on-site check (核查): urging their owner would urge the wrong party.
URGEABLE_STATES = frozenset({"dispatched", "in_progress", "suspended"})


def decide_urge(case: CaseSnapshot | None, case_no: str) -> Allowed | Refused:
    """督办 by hand: only an open case that an owner holds and still has to handle."""
    if case is None:
        return Refused(f"no case numbered {case_no} is known (案件不存在)", 404)
    if case.state in FINAL_STATES:
        return Refused(f"case {case_no} is {_state_name(case.state)}: a finished case is not urged")
    if case.state in ("resolved", "explained"):
        return Refused(f"case {case_no} is {_state_name(case.state)}: the owner has answered; it awaits the "
                       "on-site check (核查), not an urge")
    if case.state not in URGEABLE_STATES or not case.owner:
        return Refused(f"case {case_no} is {_state_name(case.state)}: no owner holds it (无承办单位); "
                       "dispatch it first")
    if case.due_at is None:
        return Refused(f"case {case_no} has no deadline yet: nothing to urge against")
    return Allowed("case.urged")


def reopens(state: str | None, verdict: str, within_window: bool) -> bool:
    """An unsatisfied answer within the survey window reopens a closed case; any other answer is only counted."""
    return verdict == "unsatisfied" and within_window and state == "closed"

"""The case state machine of DESIGN.md, and how one event folds into a case's state. Pure."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.contracts.cases import STATE_AFTER

# DESIGN.md "The closed loop": from each state, the states a case may move to. Beyond the table:
# the command center may re-dispatch an open case by hand at any point before it is closed (the
# holder gets task.recalled), and an explained case that fails its check goes back for rework. An accepted
# case may be closed at once when its coordinator fixed it on the spot (自行处置: case.accepted carries
# resolved_on_the_spot, and supervision closes it without dispatch).
_REDISPATCH = "dispatched"
TRANSITIONS: dict[str, frozenset[str]] = {
    "reported": frozenset({"accepted", "rejected", "merged"}),
    "rejected": frozenset(),
    "merged": frozenset(),
    "accepted": frozenset({"dispatched", "closed"}),
    "dispatched": frozenset({"in_progress", "returned", _REDISPATCH}),
    "returned": frozenset({"dispatched"}),
    "in_progress": frozenset({"resolved", "explained", "suspended", _REDISPATCH}),
    "suspended": frozenset({"in_progress", _REDISPATCH}),
    "resolved": frozenset({"closed", "rework", _REDISPATCH}),
    "rework": frozenset({"dispatched"}),
    "explained": frozenset({"closed", "rework", _REDISPATCH}),
    "closed": frozenset({"reopened"}),
    "reopened": frozenset({"dispatched"}),
}
STATES = tuple(TRANSITIONS)
# The states in which an owner holds the case: a resident's comment reaches them as a task note.
HELD_STATES = frozenset({"dispatched", "in_progress", "suspended", "resolved", "explained", "rework"})
# The event that moves a case into each state: the contract's table.
EVENT_TARGETS: dict[str, str] = STATE_AFTER
# Events that annotate a case (deadlines, requests, decisions, answers) without moving it.
ANNOTATIONS = frozenset({
    "case.warned", "case.overdue", "case.escalated", "case.urged", "case.classified", "case.located",
    "case.progress-reported", "case.extension-requested", "case.extension-decided", "case.survey-answered",
    "case.commented",
})

Effect = Literal["moved", "noted", "refused", "history"]


@dataclass(frozen=True)
class Fold:
    """The state after one event, what the event did, and why it was refused if it was."""

    state: str | None
    effect: Effect
    reason: str | None = None

    @property
    def applies(self) -> bool:
        """Whether the event's facts go into the read model (moved or noted), not only the history."""
        return self.effect in ("moved", "noted")


def next_state(current: str | None, event_type: str) -> Fold:
    """Fold one event type into the current state (None: a case not seen yet)."""
    target = EVENT_TARGETS.get(event_type)
    if target is None:
        if event_type in ANNOTATIONS:
            return Fold(current, "noted")
        return Fold(current, "history")
    if current is None:
        # First event we see of this case (a replay from the middle of the log): trust it.
        return Fold(target, "moved")
    if target in TRANSITIONS[current]:
        return Fold(target, "moved")
    allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing (final state)"
    return Fold(current, "refused", f"{event_type} is not allowed in state {current}; allowed next: {allowed}")

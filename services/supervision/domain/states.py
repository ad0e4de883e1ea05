"""The case state machine of DESIGN.md, and how one event folds into a case's state. Pure."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# DESIGN.md "The closed loop": from each state, the states a case may move to.
TRANSITIONS: dict[str, frozenset[str]] = {
    "reported": frozenset({"accepted", "rejected", "merged"}),
    "rejected": frozenset(),
    "merged": frozenset(),
    "accepted": frozenset({"dispatched"}),
    "dispatched": frozenset({"in_progress", "returned"}),
    "returned": frozenset({"dispatched"}),
    "in_progress": frozenset({"resolved", "explained", "suspended"}),
    "suspended": frozenset({"in_progress"}),
    "resolved": frozenset({"closed", "rework"}),
    "rework": frozenset({"dispatched"}),
    "explained": frozenset({"closed"}),
    "closed": frozenset({"reopened"}),
    "reopened": frozenset({"dispatched"}),
}
STATES = tuple(TRANSITIONS)

# The event that moves a case into each state. Only types the contract names so far; the events
# for in_progress, suspended, resolved, rework, explained and reopened join here once
# shared/contracts defines them (until then they are kept as history only).
EVENT_TARGETS: dict[str, str] = {
    "case.reported": "reported",
    "case.accepted": "accepted",
    "case.rejected": "rejected",
    "case.merged": "merged",
    "case.dispatched": "dispatched",
    "case.returned": "returned",
    "case.closed": "closed",
}
# Supervision's own events: they annotate a case (warned, overdue, escalated) without moving it.
ANNOTATIONS = frozenset({"case.warned", "case.overdue", "case.escalated"})

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

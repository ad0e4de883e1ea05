"""Which read-model columns an event sets. Pure: typed event in, column values out."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.contracts.cases import (
    CaseAccepted,
    CaseDispatched,
    CaseEscalated,
    CaseMerged,
    CaseOverdue,
    CaseRejected,
    CaseReported,
    CaseWarned,
)
from shared.contracts.registry import EventModel
from shared.logs import mask_phone

# The columns of `cases` an event may set (besides case_no and state); SQL is built from these names.
COLUMNS = (
    "category", "unit_grid", "owner", "owner_name", "priority", "source", "description",
    "reported_at", "accepted_at", "dispatched_at", "due_at", "closed_at",
    "warned_at", "overdue_at", "escalation_level", "merged_into_case_no", "rejection_reason",
)


def case_columns(event: EventModel | None, event_type: str, occurred_at: datetime) -> dict[str, Any]:
    """The column values an applied event sets on its case (unknown types set none)."""
    if isinstance(event, CaseReported):
        return {"category": event.category, "unit_grid": event.unit_grid, "source": event.source,
                "description": event.description, "reported_at": occurred_at}
    if isinstance(event, CaseAccepted):
        return {"category": event.category, "unit_grid": event.unit_grid, "description": event.description,
                "accepted_at": occurred_at}
    if isinstance(event, CaseRejected):
        return {"rejection_reason": event.reason, "closed_at": occurred_at}
    if isinstance(event, CaseMerged):
        return {"merged_into_case_no": event.into_case_no, "closed_at": occurred_at}
    if isinstance(event, CaseDispatched):
        # A new dispatch starts a new handling period: earlier warnings belong to the old one.
        return {"owner": event.owner, "owner_name": event.owner_name, "category": event.category,
                "unit_grid": event.unit_grid, "priority": event.priority, "dispatched_at": event.dispatched_at,
                "due_at": event.due_at, "warned_at": None, "overdue_at": None, "escalation_level": None}
    if isinstance(event, CaseWarned):
        return {"warned_at": occurred_at}
    if isinstance(event, CaseOverdue):
        return {"overdue_at": occurred_at}
    if isinstance(event, CaseEscalated):
        return {"escalation_level": event.level}
    if event_type == "case.closed":
        return {"closed_at": occurred_at}
    return {}


def without_contacts(data: dict[str, Any]) -> dict[str, Any]:
    """Event data fit for the supervision history: the resident's phone masked (notify owns contacts)."""
    reporter = data.get("reporter")
    if not isinstance(reporter, dict) or not reporter.get("phone"):
        return data
    return {**data, "reporter": {**reporter, "phone": mask_phone(str(reporter["phone"]))}}

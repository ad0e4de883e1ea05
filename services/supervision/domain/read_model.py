"""Which read-model columns an event sets. Pure: typed event in, column values out."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.contracts import cases as c
from shared.contracts.registry import EventModel
from shared.personal_data import mask_name, mask_phone_number
from services.supervision.domain.overdue import clears_overdue

# The columns of `cases` an event may set (besides case_no and state); SQL is built from these names.
COLUMNS = (
    "category", "unit_grid", "owner", "owner_name", "priority", "source", "description",
    "reported_at", "accepted_at", "dispatched_at", "due_at", "closed_at",
    "warned_at", "overdue_at", "escalation_level", "merged_into_case_no", "rejection_reason",
    "signed_at", "resolved_at", "result", "result_media", "explanation", "return_reason", "suspend_reason",
    "extension_until", "extension_reason", "extension_state", "check_note", "close_outcome", "closed_on_time",
    "last_verdict", "reopened_count", "dispatch_count", "rework_count", "dispatch_note",
    "reported_by", "report_media", "address", "location", "on_the_spot",
)


def case_columns(event: EventModel | None, event_type: str, occurred_at: datetime) -> dict[str, Any]:
    """The column values an applied event sets on its case (unknown types set none)."""
    if isinstance(event, c.CaseReported):
        return {"category": event.category, "unit_grid": event.unit_grid, "source": event.source,
                "description": event.description, "reported_at": occurred_at,
                "reported_by": event.coordinator.worker_id if event.coordinator else None,
                "report_media": list(event.media), "address": event.address, **_place(event.location)}
    if isinstance(event, c.CaseAccepted):
        columns = {"category": event.category, "unit_grid": event.unit_grid, "description": event.description,
                   "accepted_at": occurred_at, **_place(event.location)}
        return {**columns, "address": event.address} if event.address else columns
    if isinstance(event, c.CaseClassified):
        return {"category": event.category}
    if isinstance(event, c.CaseLocated):
        columns = {"unit_grid": event.unit_grid, **_place(event.location)}
        return {**columns, "address": event.address} if event.address else columns
    if isinstance(event, c.CaseRejected):
        return {"rejection_reason": event.reason, "closed_at": occurred_at}
    if isinstance(event, c.CaseMerged):
        return {"merged_into_case_no": event.into_case_no, "closed_at": occurred_at}
    if isinstance(event, c.CaseDispatched):
        # A new dispatch starts a new handling period: earlier warnings and answers belong to the old one.
        return {"owner": event.owner, "owner_name": event.owner_name, "category": event.category,
                "unit_grid": event.unit_grid, "priority": event.priority, "dispatched_at": event.dispatched_at,
                "due_at": event.due_at, "warned_at": None, "overdue_at": None, "escalation_level": None,
                "signed_at": None, "resolved_at": None, "closed_at": None, "extension_state": None,
                "dispatch_note": event.note, "dispatch_count": _INCREMENT}
    if isinstance(event, c.CaseSigned):
        return {"signed_at": occurred_at}
    if isinstance(event, c.CaseResolved):
        return {"resolved_at": occurred_at, "result": event.result, "result_media": event.media}
    if isinstance(event, c.CaseExplained):
        return {"resolved_at": occurred_at, "explanation": event.explanation}
    if isinstance(event, c.CaseReturned):
        return {"return_reason": event.reason}
    if isinstance(event, c.CaseSuspended):
        return {"suspend_reason": event.reason}
    if isinstance(event, c.CaseResumed):
        return {"due_at": event.due_at, **_new_deadline(event.due_at, occurred_at)}
    if isinstance(event, c.CaseExtensionRequested):
        return {"extension_until": event.until, "extension_reason": event.reason, "extension_state": "pending"}
    if isinstance(event, c.CaseExtensionDecided):
        return {"extension_state": "approved" if event.approved else "denied", "due_at": event.due_at,
                **_new_deadline(event.due_at, occurred_at)}
    if isinstance(event, c.CaseReworked):
        return {"check_note": event.note, "rework_count": _INCREMENT}
    if isinstance(event, c.CaseClosed):
        closed = {"closed_at": event.closed_at, "check_note": event.note, "close_outcome": event.outcome,
                  "closed_on_time": event.on_time}
        if event.on_the_spot:  # 自行处置: the coordinator's result is the case's result
            return {**closed, "on_the_spot": True, "resolved_at": event.closed_at, "result": event.result,
                    "result_media": list(event.media)}
        return closed
    if isinstance(event, c.CaseSurveyAnswered):
        return {"last_verdict": event.verdict}
    if isinstance(event, c.CaseReopened):
        return {"closed_at": None, "reopened_count": _INCREMENT}
    if isinstance(event, c.CaseWarned):
        return {"warned_at": occurred_at} if event.stage == "handling" else {}
    if isinstance(event, c.CaseOverdue):
        return {"overdue_at": occurred_at} if event.stage == "handling" else {}
    if isinstance(event, c.CaseEscalated):
        return {"escalation_level": event.level}
    return {}


def _new_deadline(due_at: datetime, occurred_at: datetime) -> dict[str, Any]:
    """A deadline still ahead clears the overdue mark (domain/overdue.py), as it starts the clock's ladder over."""
    return {"overdue_at": None} if clears_overdue(due_at, occurred_at) else {}


def _place(location: c.Location | None) -> dict[str, Any]:
    """The location column, set only when the event has a point (a later event without one keeps it)."""
    return {"location": location.model_dump()} if location is not None else {}


class _Increment:
    """Marker: add one to the counter column instead of setting it."""

    def __repr__(self) -> str:
        return "+1"


_INCREMENT = _Increment()
INCREMENT = _INCREMENT


def without_contacts(data: dict[str, Any]) -> dict[str, Any]:
    """Event data fit for the supervision history: the resident's name and phone masked (notify owns
    contacts). Intake publishes them masked already; an older event may still carry them in clear."""
    reporter = data.get("reporter")
    if not isinstance(reporter, dict):
        return data
    phone = reporter.get("phone")
    return {**data, "reporter": {**reporter, "name": mask_name(_text(reporter.get("name"))),
                                 "phone": mask_phone_number(str(phone)) if phone else None}}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None

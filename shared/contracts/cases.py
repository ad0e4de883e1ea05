"""Case lifecycle events on `wangge.cases` (key: case id)."""
from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from shared.contracts.common import Coordinator, Location, Priority, Reporter, ReportSource, TimeLimit
from shared.contracts.registry import EventModel, event


@event
class CaseReported(EventModel):
    """A report was received and numbered; not yet accepted."""

    TYPE = "case.reported"
    case_no: str
    source: ReportSource
    external_id: str
    category: str | None = None
    description: str
    location: Location | None = None
    address: str | None = None
    reporter: Reporter | None = None
    coordinator: Coordinator | None = None
    media: list[str] = Field(default_factory=list)
    observed_at: AwareDatetime
    unit_grid: str | None = Field(default=None, description="where the report was located, if it could be")


@event
class CaseAccepted(EventModel):
    """立案: a real case with a category and a unit grid."""

    TYPE = "case.accepted"
    case_no: str
    category: str
    unit_grid: str
    description: str
    location: Location | None = None
    address: str | None = None
    media: list[str] = Field(default_factory=list)


@event
class CaseRejected(EventModel):
    """Not a case; the reporter is told why."""

    TYPE = "case.rejected"
    case_no: str
    reason: str


@event
class CaseMerged(EventModel):
    """A duplicate of an open case nearby; the reporter follows that case."""

    TYPE = "case.merged"
    case_no: str
    into_case_id: str
    into_case_no: str


@event
class CaseDispatched(EventModel):
    """派遣: sent to one owner, its clock running from dispatched_at."""

    TYPE = "case.dispatched"
    case_no: str
    owner: str
    owner_name: str | None = None
    category: str
    unit_grid: str
    priority: Priority
    time_limit: TimeLimit
    dispatched_at: AwareDatetime
    due_at: AwareDatetime


@event
class CaseWarned(EventModel):
    """催办: 75% of the handling limit has passed and the case is not finished."""

    TYPE = "case.warned"
    case_no: str
    owner: str
    due_at: AwareDatetime


@event
class CaseOverdue(EventModel):
    """超期: the handling limit has passed."""

    TYPE = "case.overdue"
    case_no: str
    owner: str
    due_at: AwareDatetime


@event
class CaseEscalated(EventModel):
    """督办: the case goes one level up (coordinator → community → command center → street leadership)."""

    TYPE = "case.escalated"
    case_no: str
    owner: str
    level: Literal["community", "command_center", "leadership"] = Field(description="who now supervises it")
    reason: str

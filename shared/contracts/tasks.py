"""Work for owners on `wangge.tasks.<owner>`, and their answers on `wangge.task-updates`."""
from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from shared.contracts.common import Location, MediaList, Priority
from shared.contracts.registry import EventModel, event


class TaskEvent(EventModel):
    """Every task.* event names the case number and the owner."""

    case_no: str
    owner: str = Field(min_length=1, max_length=50)


@event
class TaskAssigned(TaskEvent):
    """A case is now this owner's work, due at due_at."""

    TYPE = "task.assigned"
    category: str
    category_name: str | None = None
    description: str
    unit_grid: str
    location: Location | None = None
    address: str | None = None
    media: list[str] = Field(default_factory=list)
    due_at: AwareDatetime
    priority: Priority
    occasion: Literal["first", "manual", "rework", "reopen"] = Field(
        default="first", description="first dispatch, by hand, after a failed check (返工) or after the resident reopened it")
    note: str | None = Field(default=None, description="the operator's reason, or what the failed check found")


@event
class TaskRecalled(TaskEvent):
    """The command center took the task back (dispatched to another owner); stop working on it."""

    TYPE = "task.recalled"
    reason: str
    new_owner: str | None = None


@event
class TaskExtensionDecided(TaskEvent):
    """The command center decided this owner's extension request."""

    TYPE = "task.extension-decided"
    approved: bool
    due_at: AwareDatetime = Field(description="the deadline in force after the decision")
    note: str | None = None


@event
class TaskUrged(TaskEvent):
    """催办/督办: the owner is reminded of a deadline near or past."""

    TYPE = "task.urged"
    level: Literal["reminder", "overdue"] = Field(description="reminder (催办, at 75%) or overdue (督办); for an urge "
                                                             "by hand, whether the deadline has passed")
    due_at: AwareDatetime
    text: str
    # Added in place (optional, so v1 readers and writers stay valid): absent on the clocks' own notices.
    note: str | None = Field(default=None, max_length=500,
                             description="督办 by hand: the operator's words (the command center urged this task)")


@event
class TaskCommented(TaskEvent):
    """The resident added a comment to a case this owner holds: a note to read (nothing to answer on the topic)."""

    TYPE = "task.commented"
    comment_id: str = Field(description="the comment's id (case.commented): the same comment is one note")
    note: str = Field(min_length=1, max_length=2000, description="the resident's words (personal data masked)")
    media: list[str] = Field(default_factory=list)
    text: str = Field(description="the note as the owner's screen shows it")


@event
class TaskUpdateRefused(TaskEvent):
    """An owner's update was not applied, and why."""

    TYPE = "task.update-refused"
    update_id: str
    update_type: str
    reason: str


@event
class TaskAccepted(TaskEvent):
    """签收: the owner has taken the task."""

    TYPE = "task.accepted"


@event
class TaskProgress(TaskEvent):
    """The owner reports progress."""

    TYPE = "task.progress"
    note: str = Field(min_length=1, max_length=2000)
    # Added in place (optional, so v1 readers and writers stay valid): photos of the work so far.
    media: MediaList = Field(default_factory=list)


@event
class TaskResolved(TaskEvent):
    """处置完成: the owner says it is done."""

    TYPE = "task.resolved"
    result: str = Field(min_length=1, max_length=2000)
    media: MediaList = Field(default_factory=list)


@event
class TaskReturned(TaskEvent):
    """回退: the owner says the task is not theirs."""

    TYPE = "task.returned"
    reason: str = Field(min_length=1, max_length=1000)


@event
class TaskExtensionRequested(TaskEvent):
    """延期申请: the owner asks for a later deadline."""

    TYPE = "task.extension-requested"
    until: AwareDatetime
    reason: str = Field(min_length=1, max_length=1000)


@event
class TaskExplained(TaskEvent):
    """解释说明: it cannot be solved now; the resident gets the explanation."""

    TYPE = "task.explained"
    explanation: str = Field(min_length=1, max_length=2000)


@event
class TaskSuspended(TaskEvent):
    """挂起: the owner cannot go on for now (waiting on the resident, the weather); the clock stops."""

    TYPE = "task.suspended"
    reason: str = Field(min_length=1, max_length=1000)


@event
class TaskResumed(TaskEvent):
    """The owner goes on with a suspended task; the clock runs again with the time that was left."""

    TYPE = "task.resumed"


@event
class TaskEscalated(TaskEvent):
    """督办 up the ladder: an overdue case went to `level` (sent on the owner's topic, and on the command
    center's when the level is command_center); sent again at each higher level while it stays overdue."""

    TYPE = "task.escalated"
    stage: Literal["handling", "dispatch", "sign", "check"] = Field(description="which clock is overdue")
    level: Literal["community", "command_center", "leadership"] = Field(description="who now supervises it")
    due_at: AwareDatetime
    text: str


# The owners' update types on wangge.task-updates, in the contract's order.
UPDATE_TYPES = (
    TaskAccepted.TYPE, TaskProgress.TYPE, TaskResolved.TYPE, TaskReturned.TYPE, TaskExtensionRequested.TYPE,
    TaskExplained.TYPE, TaskSuspended.TYPE, TaskResumed.TYPE,
)

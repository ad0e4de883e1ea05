"""Case lifecycle events on `wangge.cases` (key: case id)."""
from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from shared.contracts.common import Coordinator, Location, OnTheSpot, Priority, Reporter, ReportSource, TimeLimit
from shared.contracts.registry import EventModel, event

Actor = str  # "operator:<client name>", "owner:<code>", "resident", "system" — who did it, for the history

Stage = Literal["handling", "dispatch", "sign", "check"]
DispatchOccasion = Literal["first", "manual", "rework", "reopen"]
SurveyVerdict = Literal["satisfied", "basically_satisfied", "unsatisfied"]
CloseOutcome = Literal["resolved", "explained"]


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
    resolved_on_the_spot: OnTheSpot | None = Field(default=None, description="自行处置: the coordinator fixed it on the "
                                                   "spot; the case is closed at once, without dispatch")


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
    resolved_on_the_spot: OnTheSpot | None = Field(default=None, description="自行处置: not dispatched; supervision "
                                                   "closes it at once (case.closed with on_the_spot true)")


@event
class CaseRejected(EventModel):
    """Not a case; the reporter is told why."""

    TYPE = "case.rejected"
    case_no: str
    reason: str
    by: Actor = "system"


@event
class CaseMerged(EventModel):
    """A duplicate of an open case nearby; the reporter follows that case."""

    TYPE = "case.merged"
    case_no: str
    into_case_id: str
    into_case_no: str
    by: Actor = "system"


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
    occasion: DispatchOccasion = Field(default="first", description="first dispatch, by hand, after rework or after reopening")
    note: str | None = Field(default=None, description="the operator's reason, or the failed check's note")
    by: Actor = "system"
    previous_owner: str | None = Field(default=None, description="who held it before (recalled on a manual re-dispatch)")


@event
class CaseWarned(EventModel):
    """催办: 75% of the handling limit has passed and the case is not finished."""

    TYPE = "case.warned"
    case_no: str
    owner: str
    stage: Stage = Field(default="handling", description="which clock: handling (the category's limit), dispatch (held report, 1 work hour), sign (签收 after dispatch, 2 work hours) or check (核查 after resolved/explained, 1 work day); limits per street")
    due_at: AwareDatetime


@event
class CaseOverdue(EventModel):
    """超期: the handling limit has passed."""

    TYPE = "case.overdue"
    case_no: str
    owner: str
    stage: Stage = Field(default="handling", description="which clock: handling (the category's limit), dispatch (held report, 1 work hour), sign (签收 after dispatch, 2 work hours) or check (核查 after resolved/explained, 1 work day); limits per street")
    due_at: AwareDatetime


@event
class CaseEscalated(EventModel):
    """督办: the case goes one level up (coordinator → community → command center → street leadership)."""

    TYPE = "case.escalated"
    case_no: str
    owner: str
    stage: Stage = Field(default="handling", description="which clock: handling (the category's limit), dispatch (held report, 1 work hour), sign (签收 after dispatch, 2 work hours) or check (核查 after resolved/explained, 1 work day); limits per street")
    level: Literal["community", "command_center", "leadership"] = Field(description="who now supervises it")
    reason: str


@event
class CaseUrged(EventModel):
    """督办 by hand: an operator urged the holder of an open case (the holder gets task.urged with the note)."""

    TYPE = "case.urged"
    case_no: str
    owner: str = Field(description="the holder who was urged")
    note: str = Field(min_length=1, max_length=500, description="the operator's words to the holder (personal data masked)")
    by: Actor
    overdue: bool = Field(description="whether the case was past its deadline when urged")


@event
class CaseCommented(EventModel):
    """A resident added a comment (and photos) to their case — on the resident's page or from an Open311 client
    (POST servicerequestupdates). Annotates the case; the holder of an open case gets it as task.commented."""

    TYPE = "case.commented"
    case_no: str
    comment_id: str = Field(description="the comment's own id (unique; also the Open311 update_id)")
    text: str = Field(min_length=1, max_length=2000, description="the resident's words (personal data masked)")
    media: list[str] = Field(default_factory=list, description="photos the resident added")
    channel: Literal["web", "open311"] = Field(description="the resident's page, or an Open311 client")
    by: Actor = "resident"
    reopen: bool = Field(default=False, description="the resident says a closed case is not solved (an Open311 "
                         "client's status=REOPEN): within the survey window it reopens the case, as an unsatisfied "
                         "survey answer does")


# ---- the closed loop after dispatch ---------------------------------------------------------



@event
class CaseClassified(EventModel):
    """分类: the command center gave a held report its category (it is accepted once it also has a place)."""

    TYPE = "case.classified"
    case_no: str
    category: str
    by: Actor


@event
class CaseLocated(EventModel):
    """定位: the command center gave a held report its place (it is accepted once it also has a category)."""

    TYPE = "case.located"
    case_no: str
    unit_grid: str
    location: Location | None = None
    address: str | None = None
    by: Actor


@event
class CaseSigned(EventModel):
    """签收: the owner has taken the task (state in_progress)."""

    TYPE = "case.signed"
    case_no: str
    owner: str
    update_id: str = Field(description="the id of the owner's task.accepted")


@event
class CaseProgressReported(EventModel):
    """The owner reported progress; the state does not change."""

    TYPE = "case.progress-reported"
    case_no: str
    owner: str
    note: str
    update_id: str
    # Added in place (optional): the photos the owner sent with the note.
    media: list[str] = Field(default_factory=list)


@event
class CaseResolved(EventModel):
    """处置完成: the owner says it is done; awaits the on-site check."""

    TYPE = "case.resolved"
    case_no: str
    owner: str
    result: str
    media: list[str] = Field(default_factory=list)
    update_id: str


@event
class CaseReturned(EventModel):
    """回退: the owner says the case is not theirs; back to the command center to dispatch again."""

    TYPE = "case.returned"
    case_no: str
    owner: str
    reason: str
    update_id: str


@event
class CaseExplained(EventModel):
    """解释说明: it cannot be solved now; the resident gets the owner's explanation, then the check closes it."""

    TYPE = "case.explained"
    case_no: str
    owner: str
    explanation: str
    update_id: str


@event
class CaseSuspended(EventModel):
    """挂起: the handling clock stops for a stated reason."""

    TYPE = "case.suspended"
    case_no: str
    owner: str
    reason: str
    by: Actor
    update_id: str | None = None


@event
class CaseResumed(EventModel):
    """The suspension ends: back in progress, the clock running again with the time that was left."""

    TYPE = "case.resumed"
    case_no: str
    owner: str
    by: Actor
    due_at: AwareDatetime = Field(description="the deadline now: the resume moment plus the time left at suspension")
    update_id: str | None = None


@event
class CaseExtensionRequested(EventModel):
    """延期申请: the owner asks for a later deadline; the command center decides."""

    TYPE = "case.extension-requested"
    case_no: str
    owner: str
    until: AwareDatetime
    reason: str
    update_id: str


@event
class CaseExtensionDecided(EventModel):
    """The command center decided an extension request: approved (due_at is the new deadline) or denied."""

    TYPE = "case.extension-decided"
    case_no: str
    owner: str
    approved: bool
    due_at: AwareDatetime = Field(description="the deadline in force after the decision")
    note: str | None = None
    by: Actor


@event
class CaseReworked(EventModel):
    """返工: the on-site check failed; the case goes back to the same owner with the check's note."""

    TYPE = "case.reworked"
    case_no: str
    owner: str
    note: str
    by: Actor
    media: list[str] = Field(default_factory=list, description="the on-site check's photos")


@event
class CaseClosed(EventModel):
    """结案: the on-site check passed a resolved or explained case, or the coordinator fixed it on the spot (自行处置)."""

    TYPE = "case.closed"
    case_no: str
    owner: str
    outcome: CloseOutcome
    result: str = Field(description="what the owner did (resolved) or its explanation (explained)")
    note: str | None = Field(default=None, description="the check's note")
    by: Actor
    closed_at: AwareDatetime
    on_time: bool = Field(description="finished by the owner within the handling limit")
    on_the_spot: bool = Field(default=False, description="自行处置: closed at acceptance, the coordinator having "
                                                         "fixed it on the spot (owner is then the command center)")
    media: list[str] = Field(default_factory=list, description="the on-site check's photos, or 自行处置's")


@event
class CaseSurveyAnswered(EventModel):
    """回访: the resident answered the satisfaction survey (counted once per survey)."""

    TYPE = "case.survey-answered"
    case_no: str
    survey_id: str
    verdict: SurveyVerdict
    comment: str | None = None
    channel: Literal["web", "sms"]
    within_window: bool = Field(description="answered within the survey window (only then can it reopen the case)")


@event
class CaseReopened(EventModel):
    """The resident said it is not solved, within the survey window: the case goes back to its owner."""

    TYPE = "case.reopened"
    case_no: str
    owner: str
    reason: str
    survey_id: str | None = None
    by: Actor


# DESIGN.md "The closed loop": the state a case is in after each state-moving event. Every reader
# of wangge.cases that follows a case's state folds with this one table.
STATE_AFTER: dict[str, str] = {
    "case.reported": "reported",
    "case.accepted": "accepted",
    "case.rejected": "rejected",
    "case.merged": "merged",
    "case.dispatched": "dispatched",
    "case.signed": "in_progress",
    "case.returned": "returned",
    "case.suspended": "suspended",
    "case.resumed": "in_progress",
    "case.resolved": "resolved",
    "case.explained": "explained",
    "case.reworked": "rework",
    "case.closed": "closed",
    "case.reopened": "reopened",
}
# The states in which a case is finished (only a reopening brings a closed one back): the one list every
# service, screen and figure reads "open" and "finished" by.
FINAL_STATES = frozenset({"rejected", "merged", "closed"})


# ---- personal data ----------------------------------------------------------------------------

ErasedField = Literal["name", "phone", "follower_phones", "delivery_addresses"]


@event
class CasePersonalDataErased(EventModel):
    """The residents' names and phone numbers of a case were erased, a configured time after its survey
    window closed (DESIGN "Personal data"). Carries no personal data itself: only what kinds were erased."""

    TYPE = "case.personal-data-erased"
    case_no: str
    erased_at: AwareDatetime
    fields: list[ErasedField] = Field(description="what was erased: the reporter's name and phone, the phones of "
                                                  "residents following the case, the addresses replies went to")

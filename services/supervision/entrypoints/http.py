"""Supervision's HTTP API: thin routes over the read model and the handlers."""
from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Path, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from services.supervision.adapters import views
from services.supervision.domain import task_cursor
from services.supervision.domain.policy import StreetPolicy
from services.supervision.domain.states import STATES
from services.supervision.commands import CheckCase, DecideExtension, SuspendCase, UrgeCase
from services.supervision.handlers import Outcome, OwnerUpdates
from services.supervision.live_policy import LivePolicy
from shared.auth import Client, require
from shared.contracts import registered_types
from shared.contracts.common import MediaList
from shared.contracts.tasks import UPDATE_TYPES
from shared.clock import Clock
from shared.http import NONBLANK, refusal
from shared.media import MediaStore, media_id_of
from shared.messagebus import MessageBus
from shared.runtime import ServiceRuntime

CaseState = Literal[STATES]  # type: ignore[valid-type]  # 422 with the allowed values for anything else
CaseNo = Path(min_length=1, max_length=50, pattern=r"^[0-9A-Za-z-]+$")
operator = require("operator", "admin")
wall = require("operator", "admin", "screen")  # reads the big screen shows (the case lists); nothing it can change
owner_only = require("owner")
checker = require("operator", "admin", "terminal")  # a terminal: the coordinator of the case's unit grid


class CheckBody(BaseModel):
    """核查: did the on-site check find the problem solved?"""

    model_config = ConfigDict(extra="forbid", json_schema_extra={  # a failed check says why (the validator below)
        "if": {"required": ["passed"], "properties": {"passed": {"const": False}}},
        "then": {"required": ["note"], "properties": {"note": {"type": "string", **NONBLANK}}}})
    passed: bool
    note: str | None = Field(default=None, max_length=1000)
    media: MediaList = Field(default_factory=list, description="photos of the check (URLs, e.g. /media/<id> from "
                             "POST /api/v1/media)")

    @model_validator(mode="after")
    def _failure_says_why(self) -> "CheckBody":
        if not self.passed and not (self.note and self.note.strip()):
            raise ValueError("a failed check needs a note: what the owner must still do (返工说明)")
        return self


class ExtensionBody(BaseModel):
    """延期审批: approved (until: the new deadline, default what the owner asked for) or denied."""

    model_config = ConfigDict(extra="forbid")
    approved: bool
    until: AwareDatetime | None = None
    note: str | None = Field(default=None, max_length=1000)


class UrgeBody(BaseModel):
    """督办: what the command center tells the holder."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"properties": {"note": NONBLANK}})
    note: str = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _says_something(self) -> "UrgeBody":
        if not self.note.strip():
            raise ValueError("note: say what the holder must do (督办意见), not only blanks")
        return self


class SuspendBody(BaseModel):
    """挂起: why the clock stops."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500)


# ---- what the routes answer (documentation: the views return plain rows; times in the street's zone) -------

class CaseView(BaseModel):
    """A case as supervision's read model has it (personal data is never in it)."""

    case_id: str
    case_no: str | None
    state: str | None = Field(description="null only until the first state-moving event arrives")
    category: str | None
    unit_grid: str | None
    owner: str | None
    owner_name: str | None
    priority: str | None
    source: str | None
    description: str | None
    reported_at: datetime | None
    accepted_at: datetime | None
    dispatched_at: datetime | None
    due_at: datetime | None
    closed_at: datetime | None
    warned_at: datetime | None
    overdue_at: datetime | None
    overdue: bool | None = Field(default=None, description="overdue (超期) now, by the one rule of every screen and "
                                                            "figure (docs/ARCHITECTURE.md, where each rule lives)")
    escalation_level: str | None
    merged_into_case_no: str | None
    rejection_reason: str | None
    signed_at: datetime | None
    resolved_at: datetime | None
    result: str | None
    result_media: Any = Field(description="the owner's photos (URLs), as reported")
    explanation: str | None
    return_reason: str | None
    suspend_reason: str | None
    extension_until: datetime | None
    extension_reason: str | None
    extension_state: Literal["pending", "approved", "denied"] | None
    check_note: str | None
    close_outcome: str | None
    closed_on_time: bool | None
    last_verdict: str | None
    reopened_count: int
    dispatch_count: int
    rework_count: int
    dispatch_note: str | None
    reported_by: str | None = Field(default=None, description="the coordinator (worker id) who reported it, if one did")
    on_the_spot: bool = Field(default=False, description="自行处置: the coordinator fixed it on the spot (closed at "
                                                         "acceptance, never dispatched)")
    events_seen: int
    last_event_at: datetime | None
    updated_at: datetime


class ClockView(BaseModel):
    """One clock of a case: `dispatch` (report → dispatch), `handling` (dispatch → resolved/explained), `sign`
    (dispatch → signed) or `check` (resolved/explained → checked)."""

    kind: str
    state: Literal["running", "stopped", "suspended"]
    owner: str
    limit_value: float
    limit_unit: str
    started_at: datetime
    warn_at: datetime
    due_at: datetime
    warned_at: datetime | None
    overdue_at: datetime | None
    escalation_level: str | None
    next_escalation_at: datetime | None = Field(default=None, description="when it goes one more level up if still overdue")
    stopped_at: datetime | None
    stop_reason: str | None
    suspended_at: datetime | None
    calendar_assumed: bool = Field(default=False, description="the deadline is in a year the holiday calendar does "
                                                               "not know yet: counted Monday–Friday")


class HistoryEntry(BaseModel):
    """One event of the case as supervision applied (or refused) it."""

    id: str
    type: str
    version: int
    occurred_at: datetime
    source: str
    effect: Literal["moved", "noted", "refused", "history"]
    state_after: str | None
    note: str | None = Field(description="why a refused event was refused")
    data: Any


class CaseDetail(CaseView):
    """One case with its clocks and its whole history."""

    clock: ClockView | None = Field(description="the handling clock, if the case was dispatched")
    stages: list[ClockView]
    history: list[HistoryEntry]


class CaseList(BaseModel):
    count: int
    cases: list[CaseView]


class CaseAction(BaseModel):
    """The case after an operator's decision or an owner's update."""

    case_no: str
    state: str | None
    event: str | None = Field(description="the case event it became")
    duplicate: bool = Field(default=False, description="present (true) when the same update was taken before")
    due_at: datetime | None = Field(default=None, description="present when the deadline moved")


class TaskView(BaseModel):
    """An open task as its owner sees it."""

    case_id: str
    case_no: str | None
    state: str | None
    category: str | None
    unit_grid: str | None
    priority: str | None
    description: str | None
    dispatched_at: datetime | None
    due_at: datetime | None
    signed_at: datetime | None
    dispatch_note: str | None
    extension_state: Literal["pending", "approved", "denied"] | None
    extension_until: datetime | None
    suspend_reason: str | None
    check_note: str | None
    overdue_at: datetime | None = Field(default=None, description="when it went past its deadline, if it did")
    overdue: bool = Field(default=False, description="overdue (超期) now, by the one rule of every screen and figure")
    rework_count: int = Field(default=0, description="failed on-site checks so far (返工)")
    reopened_count: int = Field(default=0, description="times the resident reopened it")
    resolved_at: datetime | None = None
    urged_at: datetime | None = Field(default=None, description="the command center's last 督办 of this holder")
    urge_note: str | None = Field(default=None, description="what that 督办 said")


TaskFilter = Literal[tuple(views.TASK_FILTERS)]  # type: ignore[valid-type]  # 422 with the allowed names otherwise
TaskOrder = Literal[task_cursor.ORDERS]  # type: ignore[valid-type]


class TaskHistoryEntry(BaseModel):
    """One event of the task's case, with only the facts of the work (no reporter, no operators' names)."""

    type: str
    occurred_at: datetime
    effect: Literal["moved", "noted", "refused", "history"]
    state_after: str | None
    data: dict[str, Any]


class OwnerTaskDetail(TaskView):
    """One task as its owner's page shows it: the owner-safe part of the case."""

    result: str | None
    result_media: Any = Field(description="the owner's own photos of the result (URLs)")
    explanation: str | None
    return_reason: str | None
    extension_reason: str | None
    closed_at: datetime | None
    address: str | None
    location: dict[str, float] | None = Field(description="{lon, lat} (WGS84), if the report had a point")
    media: list[str] = Field(description="the report's photos (URLs)")
    reporter: dict[str, str | None] | None = Field(description="the resident, masked (李** / 139****1001)")
    work_seconds_left: float | None = Field(description="work time (the street's calendar) until due_at, 0 when past; "
                                                        "null when the task has no running deadline")
    stages: list[ClockView] = Field(description="this owner's clocks of the case (sign, handling)")
    history: list[TaskHistoryEntry]


class TaskList(BaseModel):
    owner: str
    count: int = Field(description="tasks on this page")
    tasks: list[TaskView]
    next: str | None = Field(description="the cursor of the next page (GET /api/v1/tasks?cursor=…), null on the last")


class StatsSummary(BaseModel):
    as_of: datetime
    total: int
    by_state: dict[str, int]
    running_clocks: int
    overdue_now: int
    finished: int
    finished_on_time: int
    on_time_share: float | None


NOT_KNOWN = refusal("no case with this number is known to supervision (or not yet)")
DECISION_REFUSALS = {200: {"model": CaseAction}, 404: NOT_KNOWN,
                     409: refusal("the case's state does not allow this (the reason says why)"),
                     422: refusal("the body does not fit, or the new deadline is not after the current one")}


def _update_body() -> dict[str, Any]:
    """The documented body of an owner's update: one of the task.* updates of the contract, as `type` and its fields
    (case_no and owner come from the path and the credential); `id` optional."""
    variants = []
    for update_type in UPDATE_TYPES:
        schema = registered_types()[update_type].model_json_schema()
        fields = {k: v for k, v in schema.get("properties", {}).items() if k not in ("case_no", "owner")}
        variants.append({
            "type": "object", "title": update_type,
            "required": ["type", *(name for name in schema.get("required", []) if name in fields)],
            "properties": {"type": {"const": update_type},
                           "id": {"anyOf": [{"type": "string", "minLength": 1, "maxLength": 100}, {"type": "null"}],
                                  "description": "the update's id (else the Idempotency-Key header): a repeat "
                                                 "with the same id changes nothing"},
                           **fields},
        })
    return {"requestBody": {"content": {"application/json": {"schema": {"oneOf": variants}}}}}


def _answer(case_no: str, outcome: Outcome) -> dict[str, Any]:
    """200 with the case's new state, or the refusal as a 4xx with its reason."""
    if outcome.refused is not None:
        raise HTTPException(outcome.refused.status, outcome.refused.reason)
    answer: dict[str, Any] = {"case_no": case_no, "state": outcome.state, "event": outcome.event_type}
    if outcome.duplicate:
        answer["duplicate"] = True
    if outcome.due_at is not None:
        answer["due_at"] = outcome.due_at
    return answer


async def photos_are_stored(store: MediaStore, media: Any) -> None:
    """A relative photo URL in an update must name a photo wangge stored: 422 naming the one that is not.
    (The contract's own checks — how many, which URL forms — come after, with the update's other fields.)"""
    if not isinstance(media, list):
        return
    for url in media:
        media_id = media_id_of(url) if isinstance(url, str) else None
        if media_id and not await asyncio.to_thread(store.exists, media_id):
            raise HTTPException(422, f"media: {url} names no photo stored by wangge; upload it first with "
                                     "POST /api/v1/media (照片不存在，请先上传)")


def build_router(runtime: ServiceRuntime, live: LivePolicy, updates: OwnerUpdates,
                 center: MessageBus, clock: Clock, store: MediaStore) -> APIRouter:
    """The /api/v1 routes of supervision: operators read and decide cases, owners see and answer their tasks.
    `live`: the street's policy in force — its grids and zone do not change, its time rules may (an admin's change).
    `clock`: the service's (the one its handlers fold and fire by), so that "overdue now" here is theirs.
    `store`: where the photos a check or an update names must be (POST /api/v1/media)."""
    router = APIRouter(prefix="/api/v1", tags=["supervision"])
    policy: StreetPolicy = live.policy  # the grids, communities and zone: the street's, whatever the configuration
    zone = policy.calendar.zone

    @router.get("/cases/{case_no}", responses={200: {"model": CaseDetail}, 404: NOT_KNOWN})
    async def get_case(case_no: str = CaseNo, _: Client = Depends(operator)) -> dict[str, Any]:
        """One case: its read model, its clocks and its event history (personal data masked)."""
        case = await views.case_detail(runtime.pool, case_no, zone, clock.now())
        if case is None:
            raise HTTPException(404, f"no case numbered {case_no!r} is known to supervision "
                                     "(not reported, or its events have not arrived yet)")
        return case

    @router.get("/cases", responses={200: {"model": CaseList}, 422: refusal("not a community of this street")})
    async def list_cases(
        state: CaseState | None = None,
        owner: str | None = Query(default=None, min_length=1, max_length=50),
        community: str | None = Query(default=None, min_length=1, max_length=50, description="a community grid code",
                                      json_schema_extra={"enum": sorted(policy.communities)}),
        unit_grid: str | None = Query(default=None, min_length=1, max_length=50),
        category: str | None = Query(default=None, min_length=1, max_length=20),
        overdue: bool | None = Query(default=None, description="open cases past their deadline (true) or not (false)"),
        due_before: AwareDatetime | None = Query(default=None, description="deadline before this moment (ISO 8601 with offset)"),
        limit: int = Query(default=50, ge=1, le=500),
        _: Client = Depends(wall),
    ) -> dict[str, Any]:
        """Open and past cases, most recently changed first, with the filters of DESIGN.md."""
        grids = [unit_grid] if unit_grid else None
        if community is not None:
            in_community = policy.unit_grids_of(community)
            if not in_community:
                raise HTTPException(422, f"no community {community!r} in this street")
            grids = [g for g in in_community if grids is None or g in grids]
        cases = await views.list_cases(runtime.pool, zone, state=state, owner=owner, unit_grids=grids, category=category,
                                       overdue=overdue, due_before=due_before, limit=limit, at=clock.now())
        return {"count": len(cases), "cases": cases}

    @router.post("/cases/{case_no}/check", responses={
        **DECISION_REFUSALS, 403: refusal("a coordinator checking a case outside their unit grids (非本网格案件)")})
    async def check(body: CheckBody, case_no: str = CaseNo,
                    client: Client = Depends(checker)) -> dict[str, Any]:
        """核查 a resolved or explained case: pass → closed (the resident hears the result), fail → rework. By an
        operator, or by the coordinator (网格员, a terminal credential or account) of the case's unit grid."""
        grids, by = None, client.actor
        if client.role == "terminal":
            grids = policy.unit_grids_of_worker(client.worker_id)
            if not grids:
                raise HTTPException(403, f"{client.worker_id or client.name!r} is not a coordinator of a unit grid of "
                                         "this street (不是本街道的网格员)")
            by = f"coordinator:{client.worker_id}"
        await photos_are_stored(store, body.media)
        media = [str(url) for url in body.media]
        return _answer(case_no, await center.handle(CheckCase(case_no, passed=body.passed, note=body.note, by=by,
                                                              media=tuple(media),
                                                              grids=tuple(grids) if grids is not None else None)))

    @router.post("/cases/{case_no}/extension", responses=DECISION_REFUSALS)
    async def extension(body: ExtensionBody, case_no: str = CaseNo, client: Client = Depends(operator)) -> dict[str, Any]:
        """Decide the owner's extension request: approved → a new deadline; denied → the old one stands."""
        outcome = await center.handle(DecideExtension(case_no, approved=body.approved, until=body.until,
                                                      note=body.note, by=client.actor))
        return _answer(case_no, outcome)

    @router.post("/cases/{case_no}/urge", responses=DECISION_REFUSALS)
    async def urge(body: UrgeBody, case_no: str = CaseNo, client: Client = Depends(operator)) -> dict[str, Any]:
        """督办 by hand: the holder of an open case gets task.urged with the note; the history and figures count it."""
        return _answer(case_no, await center.handle(UrgeCase(case_no, note=body.note, by=client.actor)))

    @router.post("/cases/{case_no}/suspend", responses=DECISION_REFUSALS)
    async def suspend(body: SuspendBody, case_no: str = CaseNo, client: Client = Depends(operator)) -> dict[str, Any]:
        """挂起 a case in progress: its handling clock stops with the time left kept."""
        return _answer(case_no, await center.handle(SuspendCase(case_no, suspend=True, reason=body.reason,
                                                                by=client.actor)))

    @router.post("/cases/{case_no}/resume", responses=DECISION_REFUSALS)
    async def resume(case_no: str = CaseNo, client: Client = Depends(operator)) -> dict[str, Any]:
        """Resume a suspended case: the clock runs again with the time that was left."""
        return _answer(case_no, await center.handle(SuspendCase(case_no, suspend=False, reason=None,
                                                                by=client.actor)))

    @router.get("/tasks", responses={200: {"model": TaskList},
                                     400: refusal("the cursor is garbled or was issued for another owner's list")})
    async def tasks(
        cursor: str | None = Query(default=None, max_length=task_cursor.MAX_CURSOR_CHARS,
                                   description="`next` of the previous page; none for the first"),
        limit: int = Query(default=100, ge=1, le=500, description="tasks per page"),
        only: TaskFilter | None = Query(
            default=None, alias="filter",
            description="new (not signed yet), in_progress (signed or suspended), returned (back after a failed check "
                        "or the resident's reopening), extension (a request pending), overdue, checking (done, "
                        "waiting for the on-site check); the cursor is a place in the same order, so keep the filter "
                        "while following `next`"),
        order: TaskOrder = Query(
            default="due_first",
            description="due_first (the nearest deadline first) or due_last (the farthest first, tasks without a "
                        "deadline on top); keep the order while following `next`"),
        client: Client = Depends(owner_only),
    ) -> dict[str, Any]:
        """The calling owner's open tasks, nearest deadline first (or last), a page at a time: follow `next` to the
        end."""
        assert client.owner_code is not None
        try:
            after = task_cursor.decode(cursor, client.owner_code) if cursor is not None else None
        except task_cursor.BadCursor as bad:
            raise HTTPException(400, str(bad))
        if after is not None and after.order != order:
            raise HTTPException(400, f"游标属于另一种排序，请保持 order 不变或从第一页重新开始 (cursor: issued for "
                                     f"order={after.order}, not {order}; keep the order while following next)")
        listed, last = await views.owner_tasks(runtime.pool, client.owner_code, zone, limit, after, only, order,
                                               at=clock.now())
        return {"owner": client.owner_code, "count": len(listed), "tasks": listed,
                "next": task_cursor.encode(client.owner_code, last) if last else None}

    @router.get("/tasks/{case_no}", responses={
        200: {"model": OwnerTaskDetail},
        404: refusal("no such case, or not a task of the calling owner (非本单位任务)")})
    async def task(case_no: str = CaseNo, client: Client = Depends(owner_only)) -> dict[str, Any]:
        """One task of the calling owner (a case it holds): description, place, the report's photos, the masked
        reporter, its deadlines with the work time left, and the history's facts. Another owner's case is a 404,
        as an unknown one: an owner learns nothing of cases it does not hold."""
        assert client.owner_code is not None
        found = await views.owner_task(runtime.pool, client.owner_code, case_no, zone, at=clock.now())
        if found is None:
            raise HTTPException(404, f"任务 {case_no} 不存在或不属于本单位 (no task {case_no!r} of {client.owner_code})")
        running = found["state"] in ("dispatched", "in_progress") and found["due_at"] is not None
        # counted in the work periods in force, like the deadline itself
        found["work_seconds_left"] = (live.policy.calendar.work_seconds_between(clock.now(), found["due_at"])
                                      if running else None)
        return found

    @router.post("/tasks/{case_no}/updates", openapi_extra=_update_body(), responses={
        **DECISION_REFUSALS, 404: refusal("no such case, or not a task of the calling owner (非本单位任务)"),
        422: refusal("not an update type, or its fields do not fit")})
    async def update_task(
        case_no: str = CaseNo,
        body: dict[str, Any] = Body(
            description="the update as on wangge.task-updates: {type, …its fields}; optional id (the update's id: "
                        "a repeat with the same id changes nothing)",
            examples=[{"type": "task.accepted"}, {"type": "task.resolved", "result": "已更换垃圾箱", "media": []}]),
        idempotency_key: str | None = Header(default=None, max_length=100, json_schema_extra={"minLength": 1}),
        client: Client = Depends(owner_only),
    ) -> dict[str, Any]:
        """An owner's update of its own task (签收, progress, resolved, returned, extension request, explanation…)."""
        assert client.owner_code is not None
        await photos_are_stored(store, body.get("media"))
        update_id = idempotency_key if body.get("id") is None else body["id"]
        if update_id is not None and not (isinstance(update_id, str) and 1 <= len(update_id) <= 100):
            raise HTTPException(422, "id: a string of 1 to 100 characters")
        return _answer(case_no, await updates.submit(client.owner_code, case_no, body, update_id))

    @router.get("/stats/summary", responses={200: {"model": StatsSummary}})
    async def stats_summary(_: Client = Depends(operator)) -> dict[str, Any]:
        """Counts by state, overdue now, and the on-time share of finished cases."""
        at = clock.now()
        return {"as_of": at.astimezone(zone), **await views.summary(runtime.pool, at)}

    return router

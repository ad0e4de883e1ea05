"""The street's time rules over HTTP (role admin): read them with their history, replace them validated.

The current configuration lives in supervision's street_config table (seeded from `<name>-config.toml`);
a change is committed with its history row and the version goes up: this instance follows it at once,
the others at their next deadline poll; routing and notify learn it from wangge.street-config, published in
the same transaction. Clocks opened from then on follow it (and the ladder of clocks
already overdue); deadlines already set stay as they were.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from services.supervision.adapters import config_store
from shared.street_config import LEVELS, LIMIT_UNITS, StreetConfigError, from_mapping
from services.supervision.live_policy import LivePolicy
from shared.auth import Client, require
from shared.http import refusal
from shared.runtime import ServiceRuntime
from shared.street_rules import announce

admin_only = require("admin")
_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitBody(_Strict):
    """A time limit: value in unit (work_hours and work_days on the street's work calendar, hours = wall time)."""

    value: float = Field(gt=0, le=10000)
    unit: Literal[LIMIT_UNITS]  # type: ignore[valid-type]


# A work period as JSON has it: a list of two "HH:MM" strings. A list, not a tuple, so that the body dumps to the
# very shape the street configuration's parser reads (and GET answers): a tuple made every PUT of periods a 422.
WorkPeriod = Annotated[list[Annotated[str, Field(pattern=_HHMM)]], Field(min_length=2, max_length=2)]


class CalendarSection(_Strict):
    periods: list[WorkPeriod] = Field(min_length=1, max_length=8,
                                      description='work periods, e.g. [["08:30", "12:00"], ["13:30", "17:30"]]')


class ReminderSection(_Strict):
    fraction: float = Field(gt=0, lt=1, description="催办 at this share of a limit")


class StagesSection(_Strict):
    dispatch: LimitBody | None = Field(default=None, description="受理派遣: report → dispatch")
    sign: LimitBody | None = Field(default=None, description="签收: dispatch → signed")
    check: LimitBody | None = Field(default=None, description="核查: resolved/explained → checked")


class EscalationSection(_Strict):
    ladder: list[Literal[LEVELS]] | None = Field(default=None, min_length=1, max_length=3,  # type: ignore[valid-type]
                                                  description="levels going up, ending with leadership")
    interval: LimitBody | None = Field(default=None, description="escalate again after this while still overdue")


class SurveySection(_Strict):
    window_days: float = Field(gt=0, le=366)


class RepliesSection(_Strict):
    quiet_hours: list[Annotated[str, Field(pattern=_HHMM)]] = Field(
        max_length=2, description='免打扰时段 ["22:00", "08:00"]: non-urgent SMS to residents wait until its end; [] for none')


class StreetConfigBody(_Strict):
    """The whole configuration: a section or key left out takes its default (DESIGN.md "Time limits")."""

    calendar: CalendarSection | None = None
    reminder: ReminderSection | None = None
    stages: StagesSection | None = None
    escalation: EscalationSection | None = None
    survey: SurveySection | None = None
    replies: RepliesSection | None = None
    note: str | None = Field(default=None, max_length=500, description="why it changed (kept in the history)")


class ConfigChange(BaseModel):
    version: int
    changed_by: str
    changed_at: datetime
    old_config: Any
    new_config: Any
    note: str | None


class StreetConfigView(BaseModel):
    """The configuration in force, with the latest changes (newest first)."""

    version: int
    config: Any
    source: str
    updated_by: str
    updated_at: datetime
    history: list[ConfigChange]


def build_admin_router(runtime: ServiceRuntime, live: LivePolicy) -> APIRouter:
    """GET/PUT /api/v1/admin/street-config."""
    router = APIRouter(prefix="/api/v1/admin", tags=["supervision admin"])

    async def view(conn) -> dict[str, Any]:
        row = await config_store.current(conn)
        if row is None:  # only before the start-up seed ran
            raise HTTPException(503, "the street configuration is not loaded yet")
        zone = live.policy.calendar.zone
        history = await config_store.history(conn)
        return {**dict(row), "updated_at": row["updated_at"].astimezone(zone),
                "history": [{**h, "changed_at": h["changed_at"].astimezone(zone)} for h in history]}

    @router.get("/street-config", responses={200: {"model": StreetConfigView},
                                             503: refusal("not loaded yet (the service is starting)")})
    async def get_street_config(_: Client = Depends(admin_only)) -> dict[str, Any]:
        """The street's time rules in force (work periods, reminder, stage limits, ladder, survey window) and their history."""
        async with runtime.pool.acquire() as conn:
            return await view(conn)

    @router.put("/street-config", responses={200: {"model": StreetConfigView},
                                             422: refusal("the configuration cannot be used (every reason is listed)"),
                                             503: refusal("not loaded yet (the service is starting)")})
    async def put_street_config(body: StreetConfigBody, client: Client = Depends(admin_only)) -> dict[str, Any]:
        """Replace the street's time rules; clocks opened from now on follow them. 422 with every reason if not usable."""
        data = body.model_dump(exclude_none=True, exclude={"note"})
        try:
            config = from_mapping(data, "configuration")
        except StreetConfigError as exc:
            raise HTTPException(422, "; ".join(exc.reasons)) from None
        async with runtime.uow() as uow:
            version, _old = await config_store.replace(uow.conn, config.to_dict(), client.actor, body.note)
            # Routing (a task's due_at) and notify (the survey window) follow it from wangge.street-config.
            announce(runtime.topics, uow, version=version, config=config.to_dict(), changed_by=client.actor,
                     source=runtime.name)
            await uow.commit()
        live.set(config.to_dict(), version)
        async with runtime.pool.acquire() as conn:
            return await view(conn)

    return router

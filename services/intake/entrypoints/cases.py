"""The command center's hands on held reports: classify, locate, reject, merge (operator or admin)."""
from __future__ import annotations

from typing import Annotated, Awaitable

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from services.intake.adapters.repository import StoredCase
from services.intake.domain.held import Refused, UnknownCase, WrongState
from services.intake.commands import Intake
from shared.auth import Client, require
from shared.contracts.common import Location
from shared.http import NONBLANK


operator = require("operator", "admin")
CaseNo = Annotated[str, Path(min_length=1, max_length=40, description="the case number, e.g. 20261127-0001")]
Text = Annotated[str, StringConstraints(strip_whitespace=True), Field(json_schema_extra=NONBLANK)]


class Classify(BaseModel):
    """分类: the category code (from the street's categories)."""

    model_config = ConfigDict(extra="forbid")
    category: Annotated[Text, StringConstraints(min_length=1, max_length=50)]


class Locate(BaseModel):
    """定位: a WGS84 point (its unit grid follows) or a unit grid code — exactly one of the two."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": [
        {"required": ["location"], "properties": {"location": {"not": {"type": "null"}}, "unit_grid": {"type": "null"}}},
        {"required": ["unit_grid"], "properties": {"unit_grid": {"not": {"type": "null"}}, "location": {"type": "null"}}},
    ]})
    location: Location | None = None
    unit_grid: Annotated[Text, StringConstraints(min_length=1, max_length=50)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Locate":
        if (self.location is None) == (self.unit_grid is None):
            raise ValueError("give exactly one of location or unit_grid (位置与单元网格二选一)")
        return self


class Reject(BaseModel):
    """不予受理: the reason the reporter is told (1–500 characters)."""

    model_config = ConfigDict(extra="forbid")
    reason: Annotated[Text, StringConstraints(min_length=1, max_length=500)]


class Merge(BaseModel):
    """合并: the number of the open case this duplicate follows."""

    model_config = ConfigDict(extra="forbid")
    into: Annotated[Text, StringConstraints(min_length=1, max_length=40)]


class HeldCaseReceipt(BaseModel):
    """The case after the operator's action."""

    case_id: str
    case_no: str
    state: str
    unit_grid: str | None
    category: str | None
    hold_reason: str | None


REFUSALS = {
    401: {"description": "no valid credential"},
    403: {"description": "not an operator or admin"},
    404: {"description": "no case has this number"},
    409: {"description": "the case (or the case to merge into) is not in a state that allows this"},
    422: {"description": "the body does not fit, or names a category, place or case this street does not know"},
}


async def _answer(action: Awaitable[StoredCase]) -> HeldCaseReceipt:
    try:
        stored = await action
    except UnknownCase as exc:
        raise HTTPException(404, exc.reason) from None
    except WrongState as exc:
        raise HTTPException(409, exc.reason) from None
    except Refused as exc:
        raise HTTPException(422, exc.reason) from None
    return HeldCaseReceipt(**stored.__dict__)


def build_cases_router(intake: Intake) -> APIRouter:
    """The command center's hands on held reports: intake's commands."""
    router = APIRouter(prefix="/api/v1/cases", tags=["held reports"])

    @router.post("/{case_no}/classify", response_model=HeldCaseReceipt, responses=REFUSALS)
    async def classify(case_no: CaseNo, body: Classify, client: Client = Depends(operator)) -> HeldCaseReceipt:
        """A held report gets its category; it is accepted (立案) if it also has a unit grid."""
        return await _answer(intake.classify(case_no, body.category, by=client.actor))

    @router.post("/{case_no}/locate", response_model=HeldCaseReceipt, responses=REFUSALS)
    async def locate(case_no: CaseNo, body: Locate, client: Client = Depends(operator)) -> HeldCaseReceipt:
        """A held report gets its place: `{location: {lon, lat}}` inside the street, or `{unit_grid}` (a unit grid
        code; the location stays unknown, the address stays). Accepted (立案) if it also has a category."""
        return await _answer(intake.locate(case_no, by=client.actor, location=body.location, unit_grid=body.unit_grid))

    @router.post("/{case_no}/reject", response_model=HeldCaseReceipt, responses=REFUSALS)
    async def reject(case_no: CaseNo, body: Reject, client: Client = Depends(operator)) -> HeldCaseReceipt:
        """Not a case (out of area, empty, abuse): the reporter is told the reason."""
        return await _answer(intake.reject(case_no, body.reason, by=client.actor))

    @router.post("/{case_no}/merge", response_model=HeldCaseReceipt, responses=REFUSALS)
    async def merge(case_no: CaseNo, body: Merge, client: Client = Depends(operator)) -> HeldCaseReceipt:
        """A duplicate follows the open (accepted) case `into`."""
        return await _answer(intake.merge(case_no, body.into, by=client.actor))

    return router

"""POST /api/v1/contacts/lookup: which cases a phone reported (operators' search on the work screen).

Only notify holds residents' phones (DESIGN "Personal data"), so the work screen asks here and shows
supervision's cases for the numbers it gets. The phone travels in a POST body (never in a URL, so never
in an access log), is compared in its normalised form inside PostgreSQL, and comes back masked.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from services.notify.adapters.lookup import case_numbers_for_phone
from shared.auth import Client, require
from shared.personal_data import mask_phone_number, normalise_phone
from shared.runtime import ServiceRuntime


class PhoneQuery(BaseModel):
    """The phone a resident gave (spaces, dashes and +86 do not matter)."""

    model_config = ConfigDict(extra="forbid")
    phone: str = Field(min_length=3, max_length=30, pattern=r"^[0-9+()\- ]+$")


class PhoneCases(BaseModel):
    """The case numbers whose reporter gave this phone, newest first; the phone masked."""

    phone: str = Field(description="the phone as asked, masked (139****1001)")
    case_nos: list[str]


def build_lookup_router(runtime: ServiceRuntime) -> APIRouter:
    """The operators' lookup of a phone's cases, on notify's pool."""
    router = APIRouter(prefix="/api/v1", tags=["operators"])

    @router.post("/contacts/lookup", response_model=PhoneCases)
    async def lookup(body: PhoneQuery, _: Client = Depends(require("operator", "admin"))) -> dict[str, Any]:
        """按手机号查案件: the numbers of the cases this phone reported (an erased contact is no longer found)."""
        found = await case_numbers_for_phone(runtime.pool, normalise_phone(body.phone))
        return {"phone": mask_phone_number(body.phone) or "****", "case_nos": found}

    return router

"""Intake's HTTP API: terminals and the hotline bridge submit reports."""
from __future__ import annotations

import hmac

import asyncpg
from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.intake.adapters import media as media_sql
from services.intake.commands import Intake, ReportRejected
from shared.auth import Client, require
from shared.contracts.common import Coordinator
from shared.contracts.reports import ReportSubmitted
from shared.http import NONBLANK
from shared.personal_data import sms_number
from shared.residents import email_resident_id, is_resident_of, normalise_email
from shared.runtime import ServiceRuntime


# Which report sources a role may speak for: a terminal cannot pose as the hotline.
# A resident (a phone proven on /my/) reports from the web, and only as that phone.
SOURCES_BY_ROLE = {"terminal": {"terminal"}, "hotline": {"hotline"}, "operator": {"web", "hotline"},
                   "admin": {"terminal", "hotline", "web", "camera"}, "resident": {"web"}}


class CaseReceipt(BaseModel):
    """What the sender of a report gets back."""

    case_id: str
    case_no: str
    state: str
    unit_grid: str | None
    category: str | None = None
    hold_reason: str | None
    duplicate: bool


def _is_the_residents_phone(key: bytes, report: ReportSubmitted, client: Client) -> None:
    """A resident's report must give the phone (or the e-mail) their code proved: the session's id is its HMAC
    (shared/residents.py), so intake checks it without ever being told the phone; any other phone is refused. One who
    proved an e-mail gives that address and no phone (the replies then go by e-mail)."""
    reporter = report.reporter
    phone = sms_number(reporter.phone if reporter else None)
    if phone is not None and is_resident_of(key, client.name, phone):
        return
    email = normalise_email(reporter.email if reporter else None)
    if phone is None and not (reporter and (reporter.phone or "").strip()) and email is not None \
            and hmac.compare_digest(email_resident_id(key, email), client.name):
        return
    raise HTTPException(403, "a resident reports with the phone they proved: reporter.phone must be that number "
                             "(居民上报须使用已验证的手机号)")


async def _photos_are_stored(pool: asyncpg.Pool, media: list[str]) -> None:
    """A relative photo URL must name a photo wangge stored (POST /api/v1/media): 422 with the one that does not."""
    missing = await media_sql.not_stored(pool, media)
    if missing:
        raise HTTPException(422, media_sql.not_stored_reason(missing[0]))


def build_router(runtime: ServiceRuntime, intake: Intake) -> APIRouter:
    """POST /api/v1/reports: intake's commands (Intake) and its pool, for the photos a report names."""
    router = APIRouter(prefix="/api/v1", tags=["reports"])

    @router.post("/reports", status_code=201, response_model=CaseReceipt,
                 responses={200: {"model": CaseReceipt,
                                  "description": "the same (source, external_id) was already a case: that case"},
                            401: {}, 403: {}, 422: {"description": "not a case (an unknown category, a place outside "
                                                                   "the street): the reason says why"}},
                 # ReportSubmitted's own rule, for the document: a location, or an address that is not blank.
                 openapi_extra={"requestBody": {"content": {"application/json": {"schema": {"anyOf": [
                     {"required": ["location"], "properties": {"location": {"type": "object"}}},
                     {"required": ["address"], "properties": {"address": {"type": "string", **NONBLANK}}}]}}}}})
    async def submit_report(
        report: ReportSubmitted,
        client: Client = Depends(require(*SOURCES_BY_ROLE)),
    ) -> JSONResponse:
        """Submit a report (the body of report.submitted); returns the case number."""
        if report.source not in SOURCES_BY_ROLE[client.role]:
            raise HTTPException(403, f"a {client.role} credential may not submit reports of source {report.source!r}; "
                                     f"it may submit {', '.join(sorted(SOURCES_BY_ROLE[client.role]))} (无权提交该来源的报告)")
        if report.resolved_on_the_spot is not None and client.role != "terminal":
            raise HTTPException(403, "resolved_on_the_spot: only a coordinator (terminal credential) fixes a problem on "
                                     "the spot (自行处置仅限网格员)")
        if client.role == "resident":
            _is_the_residents_phone(runtime.settings.resident_secret(), report, client)
        if client.role == "terminal":
            # The terminal's own credential says who and which device reported, whatever the body claims.
            report = report.model_copy(update={"coordinator": Coordinator(
                worker_id=client.worker_id or client.name[:50], device_id=client.device_id or client.name[:50])})
        await _photos_are_stored(runtime.pool, report.media)
        if report.resolved_on_the_spot is not None:
            await _photos_are_stored(runtime.pool, report.resolved_on_the_spot.media)
        try:
            # Scoped to the credential, never its name (Client.sender_scope: names are not unique).
            case, created = await intake.submit(report, via="http", client=client.sender_scope)
        except ReportRejected as exc:
            raise HTTPException(422, str(exc)) from None
        receipt = CaseReceipt(**case.__dict__, duplicate=not created)
        return JSONResponse(receipt.model_dump(), status_code=201 if created else 200)

    return router

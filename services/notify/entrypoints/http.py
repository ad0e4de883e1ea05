"""notify's HTTP API (thin: commands.py and the repository do the work).

Operators: the deliveries and their resends (credential required). Residents: the survey and
their own case (no credential: the phone given in the report is the proof). The SMS gateway: the
inbound-reply callback.
"""
from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from shared.auth import Client, require
from shared.clock import Clock, to_street_time
from shared.contracts.cases import SurveyVerdict
from shared.personal_data import mask_address, mask_personal
from shared.proxies import client_address, client_is_in
from shared.runtime import ServiceRuntime

from services.notify import commands
from services.notify.adapters import repository

operators = require("operator", "admin")


# ---- operators -----------------------------------------------------------------------------------

class DeliveryView(BaseModel):
    """One reply to a resident as an operator sees it: the number masked."""

    id: str
    case_id: str
    case_no: str
    kind: str
    template: str
    channel: str
    to: str
    text: str
    state: str
    attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime | None = Field(description="when a pending delivery is tried next")
    expires_at: datetime = Field(description="retried until then; failed after")
    uncertain_since: datetime | None = Field(
        description="a worker stopped mid-send: the gateway may have had it; re-sent with the same idempotency key")
    resend_of: str | None = Field(description="the failed delivery this one resends")
    requested_by: str | None = Field(description="who asked for the resend")


class DeliveryList(BaseModel):
    """Deliveries, newest first."""

    deliveries: list[DeliveryView]


class Resent(BaseModel):
    """The new delivery a resend created."""

    id: str
    resend_of: str
    state: str


def _delivery_view(row: dict[str, Any]) -> DeliveryView:
    """A stored delivery as shown: address masked, times with the street's offset."""
    return DeliveryView(
        **{k: row[k] for k in ("id", "case_id", "case_no", "kind", "template", "channel", "state", "attempts",
                               "resend_of", "requested_by")},
        to=mask_address(row["to_phone"]),
        # Texts quote owners' results and explanations, which may carry a number: mask to be safe.
        text=mask_personal(row["text"]),
        last_error=mask_personal(row["last_error"]) if row["last_error"] else None,
        created_at=to_street_time(row["created_at"]),
        updated_at=to_street_time(row["updated_at"]),
        sent_at=_street(row["sent_at"]),
        next_attempt_at=_street(row["next_attempt_at"]) if row["state"] == "pending" else None,
        expires_at=to_street_time(row["expires_at"]),
        uncertain_since=_street(row["uncertain_since"]),
    )


# ---- residents -----------------------------------------------------------------------------------

class SurveyAnswer(BaseModel):
    """A resident's answer to the satisfaction survey of their closed case."""

    phone: str = Field(min_length=3, max_length=30, description="the phone given in the report (the proof)")
    verdict: SurveyVerdict
    comment: str | None = Field(default=None, max_length=500)


class SurveyAnswered(BaseModel):
    """The answer as counted."""

    case_no: str
    survey_id: str
    verdict: SurveyVerdict
    channel: str
    within_window: bool
    answered_at: datetime


class MyCaseQuery(BaseModel):
    """Which case, and the phone that proves it is the caller's."""

    case_no: str = Field(min_length=1, max_length=50)
    phone: str = Field(min_length=3, max_length=30)


class ReplyView(BaseModel):
    """One reply sent (or being sent) to the resident's phone."""

    case_no: str
    kind: str
    text: str
    state: str
    time: datetime = Field(description="when it was sent, or else queued")


class FollowedCase(BaseModel):
    """The case a merged report follows."""

    case_no: str
    status: str | None
    status_label: str | None


class MyCase(BaseModel):
    """The resident's own case."""

    case_no: str
    status: str
    status_label: str
    changed_at: datetime
    followed: FollowedCase | None
    replies: list[ReplyView]


_RESIDENT_ERRORS = {404: {"description": commands.NOT_FOUND},
                    429: {"description": "too many failed tries",
                          "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}}}


class InboundSms(BaseModel):
    """A resident's SMS as the gateway forwards it."""

    model_config = ConfigDict(populate_by_name=True)

    sender: str = Field(alias="from", min_length=1, max_length=30)
    text: str = Field(max_length=1000)


class InboundAnswer(BaseModel):
    """What became of an inbound SMS: matched=false with the reason, or the survey answer it counted as."""

    matched: bool
    reason: str | None = None
    case_no: str | None = None
    survey_id: str | None = None
    verdict: SurveyVerdict | None = None
    channel: str | None = None
    within_window: bool | None = None
    answered_at: str | None = Field(default=None, description="ISO 8601 with the street's offset")


def _is_the_gateway(expected: str, presented: str | None) -> bool:
    """The callback's secret matches, compared in constant time. No secret configured: nobody is the gateway
    (a phone number alone would answer a resident's survey and tell which case is theirs)."""
    if not expected or not presented:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


class _resident_errors:
    """Map the residents' command errors to HTTP: 404, 409, 429 with Retry-After."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, _type: Any, exc: BaseException | None, _tb: Any) -> bool:
        if isinstance(exc, commands.Throttled):
            raise HTTPException(429, "too many failed tries; wait before trying again (尝试次数过多，请稍后再试)",
                                headers={"Retry-After": str(exc.retry_after)}) from None
        if isinstance(exc, commands.NotFound):
            raise HTTPException(404, str(exc)) from None
        if isinstance(exc, commands.Conflict):
            raise HTTPException(409, str(exc)) from None
        return False


def _client_ip(request: Request) -> str:
    """The caller's address, from X-Forwarded-For only as far as trusted proxies wrote it (shared/proxies.py)."""
    return client_address(request)


def _street(moment: datetime | None) -> datetime | None:
    return to_street_time(moment) if moment else None


def build_router(runtime: ServiceRuntime, clock: Clock) -> APIRouter:
    """The operators' deliveries, the residents' survey and case, the gateway's callback (notify's runtime, clock)."""
    router = APIRouter(prefix="/api/v1")

    @router.get("/deliveries", response_model=DeliveryList, tags=["deliveries"])
    async def list_deliveries(
        case_no: str | None = Query(None, max_length=50, description="only this case's replies"),
        state: Literal["awaiting_contact", "pending", "sending", "sent", "failed", "held"] | None = Query(None),
        uncertain: bool | None = Query(None, description="true: only deliveries that may have reached the gateway "
                                                         "before their worker stopped"),
        limit: int = Query(50, ge=1, le=500),
        _client: Client = Depends(operators),
    ) -> DeliveryList:
        """Replies sent (or being sent) to residents, phone numbers masked."""
        rows = await repository.list_deliveries(runtime.pool, case_no=case_no, state=state,
                                                uncertain=uncertain, limit=limit)
        return DeliveryList(deliveries=[_delivery_view(row) for row in rows])

    @router.post("/deliveries/{delivery_id}/resend", response_model=Resent, tags=["deliveries"],
                 responses={404: {"description": "no such delivery"}, 409: {"description": "not failed, or resent"}})
    async def resend_delivery(delivery_id: str, client: Client = Depends(operators)) -> Resent:
        """Send a failed reply again: a new delivery with a fresh id and expiry, referencing the original."""
        try:
            return Resent(**await commands.resend(runtime, delivery_id, requested_by=client.actor, clock=clock))
        except commands.NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except commands.Conflict as exc:
            raise HTTPException(409, str(exc)) from None

    @router.post("/surveys/{case_no}", response_model=SurveyAnswered, tags=["residents"],
                 responses={**_RESIDENT_ERRORS,
                            409: {"description": "no open survey: not closed, answered or too late"}})
    async def answer_survey(request: Request, case_no: str, body: SurveyAnswer) -> SurveyAnswered:
        """回访评价: the resident's verdict on their closed case, counted once, within the survey window."""
        with _resident_errors():
            answer = await commands.answer_survey(runtime, case_no=case_no, phone=body.phone,
                                                  verdict=body.verdict, comment=body.comment,
                                                  client_ip=_client_ip(request), clock=clock)
        return SurveyAnswered(**{**answer, "answered_at": to_street_time(answer["answered_at"])})

    @router.post("/my-case", response_model=MyCase, tags=["residents"], responses=_RESIDENT_ERRORS)
    async def my_case(request: Request, body: MyCaseQuery) -> MyCase:
        """案件查询: the resident's own case, its state and the replies sent to that phone (numbers masked)."""
        with _resident_errors():
            found = await commands.my_case(runtime, case_no=body.case_no, phone=body.phone,
                                           client_ip=_client_ip(request), clock=clock)
        replies = [
            ReplyView(case_no=d["case_no"], kind=d["kind"], text=mask_personal(d["text"]), state=d["state"],
                      time=to_street_time(d["sent_at"] or d["created_at"]))
            for d in found["replies"]
        ]
        return MyCase(**{**found, "changed_at": to_street_time(found["changed_at"]), "replies": replies})

    @router.post("/sms/inbound", tags=["gateway"], responses={200: {"model": InboundAnswer},
                                                              401: {"description": "missing or wrong X-Gateway-Token"},
                                                              403: {"description": "not from the gateway's addresses "
                                                                    "(WANGGE_SMS_GATEWAY_ADDRESSES)"}})
    async def inbound_sms(request: Request, body: InboundSms,
                          x_gateway_token: str | None = Header(None)) -> dict[str, Any]:
        """The gateway's callback for a resident's SMS reply; 200 even when it is not a survey answer (the
        gateway must not retry it), with matched=false and the reason."""
        settings = runtime.settings
        if settings.sms_gateway_addresses and not client_is_in(request, settings.sms_gateway_addresses):
            # Kept to the gateway's own addresses: a stolen secret alone, from anywhere else, is not the gateway.
            raise HTTPException(403, "the SMS callback is taken from the gateway's addresses only (非短信网关地址)")
        if not _is_the_gateway(settings.sms_inbound_token, x_gateway_token):
            raise HTTPException(401, "missing or wrong X-Gateway-Token (网关凭证无效)")
        result = await commands.answer_by_sms(runtime, sender=body.sender, text=body.text, clock=clock)
        if "answered_at" in result:
            result["answered_at"] = to_street_time(result["answered_at"]).isoformat()
        return result

    return router

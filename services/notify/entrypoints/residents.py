"""/api/v1/resident/…: the resident page's (/my/) own endpoints on notify, which alone holds phones.

Prove a phone (a one-time SMS code → the session cookie `wangge_session`, a registry credential of role resident) or,
for one who reported with only an e-mail, an e-mail address (the code by e-mail),
follow one's own cases with every state and reply, answer the survey from the signed link of the survey SMS.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.auth import Client, end_session, require, session_token, set_session_cookie
from shared.clock import Clock, to_street_time
from shared.contracts.cases import SurveyVerdict
from shared.http import refusal
from shared.personal_data import mask_personal
from shared.proxies import client_address
from shared.residents import BadLink, read_survey_token, survey_token
from shared.runtime import ServiceRuntime

from services.notify import commands
from services.notify.adapters import repository
from services.notify.adapters import resident_store as store
from services.notify.domain.replies import STAFF_KINDS
from services.notify.domain.residents import VERDICT_LABELS, state_label
from services.notify.residents import Residents, ResidentRefused

resident = require("resident")
Token = Path(min_length=10, max_length=200, pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")


class _PhoneOrEmail(BaseModel):
    """A phone, or instead an e-mail address (one who reported with only an e-mail): exactly one of the two."""

    model_config = ConfigDict(extra="forbid", strict=True)
    phone: str | None = Field(default=None, min_length=3, max_length=30,
                              description="a mainland mobile number: the code comes by SMS")
    email: str | None = Field(default=None, min_length=3, max_length=254,
                              description="instead of a phone, an e-mail address: the code comes by e-mail")

    @model_validator(mode="after")
    def _one_of_them(self) -> "_PhoneOrEmail":
        if (self.phone is None) == (self.email is None):
            raise ValueError("give a phone or an e-mail address, one of them (请填写手机号码或电子邮箱之一)")
        return self


class CodeAsk(_PhoneOrEmail):
    pass


class CodeSent(BaseModel):
    phone: str | None = Field(description="the number, masked (139****1001); null when the code went by e-mail")
    email: str | None = Field(default=None, description="the e-mail address, masked (z***@example.cn); null for SMS")
    expires_in: int = Field(description="seconds the code is valid")


class CodeProof(_PhoneOrEmail):
    code: str = Field(pattern=r"^[0-9]{6}$", description="the 6 digits of the SMS or e-mail")


class ResidentMe(BaseModel):
    """The signed-in resident: their own phone or e-mail address (shown to them alone), its masked form, the
    session's end."""

    resident_id: str
    phone: str | None = Field(description="the proven phone; null for a resident who proved an e-mail")
    phone_masked: str | None
    email: str | None = Field(default=None, description="the proven e-mail address; null for a phone")
    email_masked: str | None = None
    expires_at: datetime


class Reply(BaseModel):
    kind: str
    text: str
    state: str
    time: datetime


class SurveyOpen(BaseModel):
    survey_id: str
    closes_at: datetime
    answered: bool
    verdict: str | None
    token: str | None = Field(default=None, description="the survey's signed link token, as the survey message "
                              "carries it: the page answers with it (POST /api/v1/resident/surveys/{token})")


class MyCaseItem(BaseModel):
    """One of the resident's cases: its state in plain words and every reply to them; no staff names."""

    case_no: str
    status: str
    status_label: str
    changed_at: datetime
    followed_case_no: str | None = Field(description="a merged report: the case it follows")
    replies: list[Reply]
    survey: SurveyOpen | None


class MyCases(BaseModel):
    cases: list[MyCaseItem]


class SurveyLinkView(BaseModel):
    """What a survey link shows: the case and whether it can still be answered (no phone, no name)."""

    case_no: str
    status_label: str
    closes_at: datetime
    answered: bool
    verdict_label: str | None


class SurveyLinkAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verdict: SurveyVerdict
    comment: str | None = Field(default=None, max_length=500)


def _json_only(request: Request) -> None:
    # A cross-site form can post text/plain without asking: these take JSON only (no login CSRF).
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise HTTPException(415, "the body must be JSON (请求格式须为 JSON)")


def _refused(exc: ResidentRefused) -> HTTPException:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return HTTPException(exc.status, exc.reason, headers=headers)


def build_residents_router(runtime: ServiceRuntime, residents: Residents, clock: Clock) -> APIRouter:
    """The resident page's endpoints (/my/): phone proof, their cases, the survey link."""
    router = APIRouter(prefix="/api/v1/resident", tags=["residents"])

    @router.post("/codes", status_code=202, response_model=CodeSent, responses={
        415: refusal("the body is not JSON"), 422: refusal("not a mainland mobile number"),
        429: refusal("too many codes for this phone (or e-mail address) or from this client address"),
        503: refusal("the SMS gateway (or the mail server) is down")})
    async def ask_code(request: Request, body: CodeAsk) -> Any:
        """获取验证码: a 6-digit code by SMS to the phone — or, given `email` instead, by e-mail to that address — valid 5
        minutes."""
        _json_only(request)
        try:
            return await residents.send_code(body.phone, client_address(request), email=body.email)
        except ResidentRefused as exc:
            raise _refused(exc) from None

    @router.post("/sessions", response_model=ResidentMe, responses={
        401: refusal("wrong or expired code"), 415: refusal("the body is not JSON"),
        429: refusal("too many wrong codes from this address"), 503: refusal("the session is not usable yet")})
    async def prove_phone(request: Request, body: CodeProof) -> Any:
        """验证手机: the code proves the phone (or the e-mail address); sets the HttpOnly session cookie `wangge_session`
        (role resident)."""
        _json_only(request)
        try:
            signed = await residents.sign_in(body.phone, body.code, client_address(request), email=body.email)
        except ResidentRefused as exc:
            raise _refused(exc) from None
        response = JSONResponse(ResidentMe(**signed.me).model_dump(mode="json"))
        set_session_cookie(response, signed.token, max_age=int(residents.settings.resident_session_hours * 3600),
                           production=residents.settings.profile == "production")
        return response

    @router.get("/sessions", response_model=ResidentMe, responses={401: refusal("no resident session")})
    async def who(request: Request) -> Any:
        """The signed-in resident, or 401 (the page then asks for the phone)."""
        found = await residents.current(session_token(request))
        if found is None:
            raise HTTPException(401, "not signed in (未验证手机或已过期)")
        return found

    @router.delete("/sessions", status_code=204, response_class=Response,
                   responses={403: refusal("a signed-in page must send X-Requested-With: wangge")})
    async def sign_out(request: Request) -> Response:
        """End the resident's session everywhere (204 also when there was none)."""
        return await end_session(request, residents.sign_out, production=residents.settings.profile == "production")

    @router.get("/cases", response_model=MyCases, responses={401: refusal("no resident session"),
                                                              403: refusal("not a resident's session")})
    async def my_cases(client: Client = Depends(resident)) -> Any:
        """我的案件: the cases this phone (or e-mail address) reported or follows, newest first, each with its state and
        every reply sent to it (and the open survey); nothing of other residents, no staff names."""
        pool, settings = runtime.pool, runtime.settings
        # The credential names the resident (an opaque id); which phone or address that is, only notify's own table says.
        phone, email = await store.address_of(pool, client.name)
        if phone:
            found, to = await store.cases_of_phone(pool, phone), phone
        elif email:
            found, to = await store.cases_of_email(pool, email), email
        else:
            found, to = [], ""
        cases = []
        for case in found:
            ids = [case["case_id"]] + ([case["followed_case_id"]] if case["followed_case_id"] else [])
            replies = [Reply(kind=d["kind"], text=mask_personal(d["text"]), state=d["state"],
                             time=to_street_time(d["sent_at"] or d["created_at"]))
                       for d in await repository.deliveries_of_cases(pool, ids)
                       if (d["to_phone"] or "").strip().lower() == to and d["kind"] not in STAFF_KINDS]
            survey = await repository.latest_survey(pool, case["followed_case_id"] or case["case_id"])
            cases.append(MyCaseItem(
                case_no=case["case_no"], status=case["state"], status_label=state_label(case["state"]),
                changed_at=to_street_time(case["changed_at"]), followed_case_no=case["followed_case_no"],
                replies=replies,
                survey=SurveyOpen(survey_id=survey["survey_id"], closes_at=to_street_time(survey["closes_at"]),
                                  answered=survey["answered_at"] is not None, verdict=survey["verdict"],
                                  # their own survey: the link's token, so that the page answers without a phone
                                  token=survey_token(settings.resident_secret(), str(survey["survey_id"]),
                                                     survey["closes_at"]))
                if survey else None))
        return MyCases(cases=cases)

    async def _linked_survey(token: str) -> Any:
        key = runtime.settings.resident_secret()
        try:
            survey_id = read_survey_token(key, token, clock.now())  # the link's end, by notify's clock
        except BadLink as exc:
            raise HTTPException(403, str(exc)) from None
        survey = await store.survey_by_id(runtime.pool, survey_id)
        if survey is None:
            raise HTTPException(404, "no such survey (评价不存在)")
        return survey

    @router.get("/surveys/{token}", response_model=SurveyLinkView, responses={
        403: refusal("the link is forged or expired"), 404: refusal("no such survey")})
    async def survey_by_link(token: str = Token) -> Any:
        """回访评价 from the survey SMS's link: which case, until when, answered or not."""
        survey = await _linked_survey(token)
        status = await repository.status_of(runtime.pool, survey["case_id"])
        return SurveyLinkView(case_no=survey["case_no"], status_label=state_label(status["state"]) if status else "",
                              closes_at=to_street_time(survey["closes_at"]), answered=survey["answered_at"] is not None,
                              verdict_label=VERDICT_LABELS.get(survey["verdict"] or ""))

    @router.post("/surveys/{token}", response_model=SurveyLinkView, responses={
        403: refusal("the link is forged or expired"), 404: refusal("no such survey"),
        409: refusal("already answered, or the window closed"), 415: refusal("the body is not JSON")})
    async def answer_by_link(request: Request, body: SurveyLinkAnswer, token: str = Token) -> Any:
        """The resident's verdict from the link: no phone typed (the signature is the proof), counted once."""
        _json_only(request)
        survey = await _linked_survey(token)
        if await commands.answer_linked(runtime, survey["survey_id"], body.verdict, body.comment, clock) is None:
            raise HTTPException(409, "this survey was already answered or has closed (该回访已评价或已结束)")
        return await survey_by_link(token)

    return router

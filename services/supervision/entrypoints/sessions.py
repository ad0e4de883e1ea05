"""Sign-in for people (/api/v1/sessions) and the administrators' account management (/api/v1/accounts)."""
from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.supervision.domain.accounts import AccountError
from services.supervision.people import People, SignInRefused
from shared.auth import Client, end_session, require, session_token, set_session_cookie
from shared.http import refusal
from shared.proxies import client_address

admin_only = require("admin")
Username = Path(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SignInBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # 0 is not false, "1" not a number
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1000)


class Me(BaseModel):
    """Who is signed in: the pages read this (web/src/common/session.js)."""

    username: str
    display_name: str
    role: str = Field(description="operator, terminal (a coordinator 网格员), owner or admin")
    owner_code: str | None
    worker_id: str | None
    unit_grids: list[str] = Field(description="a coordinator's unit grids (from the street's people); else empty")
    expires_at: datetime


class AccountBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # 0 is not false, "1" not a number
    username: str = Field(min_length=1, max_length=50)
    display_name: str = Field(min_length=1, max_length=100)
    kind: Literal["operator", "coordinator", "owner", "admin"]
    password: str = Field(min_length=8, max_length=200)
    owner_code: str | None = Field(default=None, max_length=50, description="owner: the department or community code")
    worker_id: str | None = Field(default=None, max_length=50, description="coordinator: the person id (W001)")


class AccountChange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # 0 is not false, "1" not a number
    disabled: bool | None = Field(default=None, description="true: disabled, every session of it ends everywhere")
    password: str | None = Field(default=None, min_length=8, max_length=200,
                                 description="a new password: the account's sessions end, its lock is lifted")


class AccountView(BaseModel):
    username: str
    display_name: str
    kind: str
    kind_label: str
    role: str
    owner_code: str | None
    worker_id: str | None
    demo: bool
    disabled: bool
    disabled_at: datetime | None
    open_sessions: int
    locked_until: datetime | None
    created_at: datetime
    updated_at: datetime


def build_sessions_router(people: People) -> APIRouter:
    """POST/GET/DELETE /api/v1/sessions; GET/POST /api/v1/accounts, PATCH /api/v1/accounts/{username}."""
    router = APIRouter(prefix="/api/v1", tags=["people"])

    @router.post("/sessions", response_model=Me, responses={
        401: refusal("wrong username or password"),
        403: refusal("the account is disabled, or a demo account under the production profile"),
        415: refusal("the body is not JSON"),
        429: refusal("too many attempts for this username or from this address: locked for a while",
                     headers={"Retry-After": {"description": "seconds until the lock lifts", "schema": {"type": "integer"}}}),
        503: refusal("the session is not usable yet (Kafka slow)")})
    async def sign_in(request: Request, body: SignInBody) -> Any:
        """Sign in with username and password: sets the HttpOnly session cookie `wangge_session` and answers who."""
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            # A cross-site form can post text/plain without asking: sign-in takes JSON only (no login CSRF).
            raise HTTPException(415, "sign-in takes a JSON body {username, password} (请求格式须为 JSON)")
        try:
            signed = await people.sign_in(body.username, body.password, client_address(request))
        except SignInRefused as refused:
            headers = {"Retry-After": str(max(1, math.ceil(refused.retry_after)))} if refused.retry_after else None
            raise HTTPException(refused.status, refused.reason, headers=headers) from None
        response = JSONResponse(Me(**signed.me).model_dump(mode="json"))
        set_session_cookie(response, signed.token, max_age=int(people.settings.session_hours * 3600),
                           production=people.production)
        return response

    @router.get("/sessions", response_model=Me, responses={401: refusal("not signed in (no session, or it ended)")})
    async def who(request: Request) -> dict[str, Any]:
        """Who the session cookie stands for; 401 if none is valid (the page then shows its sign-in form)."""
        me = await people.current(session_token(request))
        if me is None:
            raise HTTPException(401, "not signed in (未登录或登录已过期)")
        return me

    @router.delete("/sessions", status_code=204, response_class=Response,
                   responses={403: refusal("a signed-in page must send X-Requested-With: wangge")})
    async def sign_out(request: Request) -> Response:
        """Sign out: the session ends everywhere and the cookie is cleared (204 also when there was none)."""
        return await end_session(request, people.sign_out, production=people.production)

    @router.get("/accounts", response_model=list[AccountView])
    async def list_accounts(_: Client = Depends(admin_only)) -> list[dict[str, Any]]:
        """Every account (never a password hash), with its open sessions and lock."""
        return await people.list()

    @router.post("/accounts", status_code=201, response_model=AccountView,
                 responses={409: refusal("the username is taken"), 422: refusal("a field or binding is not valid")})
    async def add_account(body: AccountBody, _: Client = Depends(admin_only)) -> dict[str, Any]:
        """A new account: an operator, a coordinator (bound to a worker id), an owner's staff (an owner code), an admin."""
        try:
            return await people.add(**body.model_dump())
        except AccountError as exc:
            raise HTTPException(409 if "taken" in str(exc) else 422, str(exc)) from None

    @router.patch("/accounts/{username}", response_model=AccountView,
                  responses={404: refusal("no such account"), 422: refusal("the new password is not valid")})
    async def change_account(body: AccountChange, username: str = Username,
                             _: Client = Depends(admin_only)) -> dict[str, Any]:
        """Disable or enable an account, or set its password; disabling or a new password ends its sessions."""
        try:
            if body.password is not None and not await people.set_password(username, body.password):
                raise HTTPException(404, f"no account {username!r} (账户不存在)")
            if body.disabled is not None and not await people.set_disabled(username, body.disabled):
                raise HTTPException(404, f"no account {username!r} (账户不存在)")
        except AccountError as exc:
            raise HTTPException(422, str(exc)) from None
        view = await people.view(username.lower())
        if view is None:
            raise HTTPException(404, f"no account {username!r} (账户不存在)")
        return view

    return router

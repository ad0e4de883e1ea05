"""POST /api/v1/resident/cases/{case_no}/comments: a resident's comment or photos on their own open case (/my/).

It reaches the case's holder as a note through intake's resident-comment path (services/intake/comments.py:
case.commented, which supervision forwards as task.commented), once per comment: the page makes one client_id per
comment, so a retry after a lost answer is the same comment. A resident comments on the cases they follow on /my/:
one they reported from the page, one reported — by the hotline, a terminal, Open311 — with the phone or e-mail
their code proved (intake keeps the opaque ids of both: reports.resident_keys), and the case a report of theirs was
merged into. Another's case, or an unknown one, is the same 404.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from services.intake.adapters import repository
from services.intake.comments import CommentRefused, add_comment
from shared.auth import Client, require
from shared.clock import Clock, to_street_time
from shared.http import refusal
from shared.runtime import ServiceRuntime

CaseNo = Path(min_length=1, max_length=40, description="the case number, e.g. 20261206-0001")


class ResidentComment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(default="", max_length=2000, description="补充说明 (may be empty when photos are given)")
    media: list[str] = Field(default_factory=list, max_length=9, description="photos stored by POST /api/v1/media")
    client_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$",
                           description="one id per comment, made by the page: a retry is the same comment")


class CommentReceipt(BaseModel):
    comment_id: str
    case_no: str
    created_at: datetime
    duplicate: bool


def build_resident_comments_router(runtime: ServiceRuntime, clock: Clock) -> APIRouter:
    """补充说明 from the resident page (/my/): on intake's runtime, and its commands' clock."""
    router = APIRouter(prefix="/api/v1/resident", tags=["residents"])

    @router.post("/cases/{case_no}/comments", status_code=201, response_model=CommentReceipt, responses={
        400: refusal("empty, too long, too many photos, or a photo wangge did not store"),
        404: refusal("no such case of this resident"), 409: refusal("the case is rejected or merged")})
    async def comment(body: ResidentComment, case_no: str = CaseNo,
                      client: Client = Depends(require("resident"))) -> Any:
        """补充说明: a comment or photos on a case the resident follows (reported with their proven phone or e-mail, from
        the page or any other way, or the case their report was merged into); the holder gets it as a note."""
        # Theirs: the credential's name is the resident's opaque id (the HMAC of the proven phone or e-mail).
        if not await repository.residents_case(runtime.pool, case_no, resident=client.name, actor=client.actor):
            raise HTTPException(404, f"no case {case_no!r} of yours (未找到您反映的该案件)")
        try:
            made = await add_comment(runtime, case_no=case_no, text=body.text, media=body.media, channel="web",
                                     sender_key=f"my:{client.name}:{body.client_id}", clock=clock)
        except CommentRefused as exc:
            raise HTTPException(exc.status, exc.reason) from None
        return CommentReceipt(comment_id=made.comment_id, case_no=made.case_no,
                              created_at=to_street_time(made.created_at), duplicate=made.duplicate)

    return router

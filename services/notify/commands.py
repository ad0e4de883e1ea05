"""notify's HTTP commands: residents' survey answers and case look-ups, SMS replies, operators' resends.

Each opens its own unit of work and commits it (ARCHITECTURE "HTTP commands"); the router maps
the errors below to HTTP statuses. `clock`: the service's, the one built into notify and handed to its routers, which its
handlers and workers read too: a survey's window and a look-up's lockout end by its moment.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from shared.clock import Clock
from shared.contracts.cases import CaseSurveyAnswered, SurveyVerdict
from shared.personal_data import mask_personal, normalise_phone
from shared.runtime import ServiceRuntime
from shared.uow import UnitOfWork

from services.notify.adapters import repository
from services.notify.domain.delivery import expires_at
from services.notify.domain.replies import STAFF_KINDS
from services.notify.domain.residents import (
    LOOKUP_MAX_FAILURES_PER_CLIENT,
    LOOKUP_WINDOW,
    SurveyState,
    lockout_seconds,
    parse_sms_verdict,
    state_label,
    survey_refusal,
)
from services.notify.handlers import SOURCE
from services.notify.metrics import RESIDENT_LOOKUPS_REFUSED, SERVICE, SURVEY_ANSWERS

log = logging.getLogger(__name__)

# One answer for a wrong phone and an unknown case: a guesser learns nothing about which it was.
NOT_FOUND = "no such case for this phone (未找到与该手机号对应的案件)"


class NotFound(LookupError):
    """Nothing the caller may see under that name."""


class Conflict(Exception):
    """The request is understood but the state does not allow it; the message says why."""


@dataclass
class Throttled(Exception):
    """Too many failed look-ups lately; try again after `retry_after` seconds."""

    retry_after: int


# ---- residents -----------------------------------------------------------------------------------

async def _resident_case(runtime: ServiceRuntime, case_no: str, phone: str, client_ip: str,
                         clock: Clock) -> asyncpg.Record:
    """The case's status row, if `phone` reported or follows it; this client's failures are counted to slow its
    guessing (per case and over all cases), and every failure gets the same answer."""
    async with runtime.pool.acquire() as conn:
        at = clock.now()
        of_case, of_client = await repository.recent_failures(conn, case_no=case_no, client_ip=client_ip,
                                                              since=at - LOOKUP_WINDOW)
        wait = max(lockout_seconds(of_case, at),
                   lockout_seconds(of_client, at, max_failures=LOOKUP_MAX_FAILURES_PER_CLIENT))
        if wait:
            RESIDENT_LOOKUPS_REFUSED.labels(SERVICE, "throttled").inc()
            raise Throttled(wait)
        status = await repository.status_by_case_no(conn, case_no)
        norm = normalise_phone(phone)
        if status is None or not norm or not await repository.is_resident_of(conn, status["case_id"], norm):
            await repository.record_failure(conn, case_no=case_no, client_ip=client_ip, forget_before=at - LOOKUP_WINDOW)
            RESIDENT_LOOKUPS_REFUSED.labels(SERVICE, "not_found").inc()
            raise NotFound(NOT_FOUND)
        return status


async def answer_survey(runtime: ServiceRuntime, *, case_no: str, phone: str, verdict: SurveyVerdict,
                        comment: str | None, client_ip: str, clock: Clock) -> dict[str, Any]:
    """A resident's web answer: counted once, within the window, emitted as case.survey-answered."""
    status = await _resident_case(runtime, case_no, phone, client_ip, clock)
    at = clock.now()
    # A merged report is surveyed on the case it follows: that is the one that was closed.
    case_id = status["followed_case_id"] or status["case_id"]
    async with runtime.uow() as uow:
        survey = await repository.latest_survey(uow.conn, case_id)
        followed = await repository.status_of(uow.conn, case_id)
        refusal = survey_refusal(
            SurveyState(survey["closes_at"], survey["answered_at"]) if survey else None, at,
            followed["state"] if followed else None,
        )
        if refusal is not None:
            raise Conflict(refusal)
        answer = await _answer(runtime, uow, survey["survey_id"], verdict, comment, "web", at)
        if answer is None:  # answered by someone else (or the window closed) since we looked
            raise Conflict("this survey was already answered (该案件的回访已评价)")
        await uow.commit()
    return answer


async def answer_by_sms(runtime: ServiceRuntime, *, sender: str, text: str, clock: Clock) -> dict[str, Any]:
    """A resident's SMS reply to the survey: the verdict for that phone's latest open survey, or why not."""
    verdict = parse_sms_verdict(text)
    if verdict is None:
        return {"matched": False, "reason": "not a survey answer: expected 1, 2, 3, 满意, 基本满意 or 不满意"}
    norm = normalise_phone(sender)
    at = clock.now()
    async with runtime.uow() as uow:
        survey = await repository.latest_open_survey_for_phone(uow.conn, norm, at) if norm else None
        if survey is None:
            return {"matched": False, "reason": "no open survey for this phone"}
        answer = await _answer(runtime, uow, survey["survey_id"], verdict, None, "sms", at)
        if answer is None:
            return {"matched": False, "reason": "the survey was answered meanwhile"}
        await uow.commit()
    return {"matched": True, **answer}


async def answer_linked(runtime: ServiceRuntime, survey_id: str, verdict: SurveyVerdict,
                        comment: str | None, clock: Clock) -> dict[str, Any] | None:
    """The answer from the survey SMS's signed link (the signature proves it): counted once, or None."""
    async with runtime.uow() as uow:
        answer = await _answer(runtime, uow, survey_id, verdict, comment, "web", clock.now())
        if answer is not None:
            await uow.commit()
    return answer


async def _answer(runtime: ServiceRuntime, uow: UnitOfWork, survey_id: str, verdict: SurveyVerdict,
                  comment: str | None, channel: str, at: datetime) -> dict[str, Any] | None:
    # Comments are free text: a resident may type a number into it; it is kept and sent masked.
    comment = mask_personal(comment.strip()) if comment and comment.strip() else None
    row = await repository.answer_survey(uow.conn, survey_id, verdict=verdict, comment=comment, channel=channel,
                                         at=at)
    if row is None:
        return None
    within = row["answered_at"] < row["closes_at"]
    event = CaseSurveyAnswered(case_no=row["case_no"], survey_id=row["survey_id"], verdict=verdict, comment=comment,
                               channel=channel, within_window=within)
    uow.emit(runtime.topics.cases, event.envelope(source=SOURCE, case_id=row["case_id"], occurred_at=at))
    uow.after_commit(lambda: SURVEY_ANSWERS.labels(SERVICE, channel, verdict).inc())
    uow.after_commit(lambda: log.info("case %s: survey %s answered %s by %s", row["case_no"], survey_id, verdict,
                                      channel))
    return {"case_no": row["case_no"], "survey_id": row["survey_id"], "verdict": verdict, "channel": channel,
            "within_window": within, "answered_at": row["answered_at"]}


async def my_case(runtime: ServiceRuntime, *, case_no: str, phone: str, client_ip: str,
                  clock: Clock) -> dict[str, Any]:
    """A resident's own case: its state and the replies sent to that phone (for a merged report, also
    the followed case's state and replies)."""
    status = await _resident_case(runtime, case_no, phone, client_ip, clock)
    norm = normalise_phone(phone)
    case_ids = [status["case_id"]]
    followed = None
    if status["followed_case_id"]:
        case_ids.append(status["followed_case_id"])
        followed = await repository.status_of(runtime.pool, status["followed_case_id"])
    deliveries = await repository.deliveries_of_cases(runtime.pool, case_ids)
    # Replies that went to the reporter's e-mail are theirs too (the phone proved they are the reporter).
    contact = await repository.contact_of(runtime.pool, status["case_id"])
    email = contact["email"] if contact and contact["email"] and normalise_phone(contact["phone"]) == norm else None
    return {
        "case_no": status["case_no"],
        "status": status["state"],
        "status_label": state_label(status["state"]),
        "changed_at": status["changed_at"],
        "followed": {
            "case_no": status["followed_case_no"],
            "status": followed["state"] if followed else None,
            "status_label": state_label(followed["state"]) if followed else None,
        } if status["followed_case_id"] else None,
        "replies": [d for d in deliveries if d["kind"] not in STAFF_KINDS and d["channel"] in ("sms", "email")
                    and (normalise_phone(d["to_phone"]) == norm or (email is not None and d["to_phone"] == email))],
    }


# ---- operators -----------------------------------------------------------------------------------

async def resend(runtime: ServiceRuntime, delivery_id: str, *, requested_by: str, clock: Clock) -> dict[str, Any]:
    """A failed delivery sent again as a new delivery (fresh id and expiry) referencing the original."""
    try:
        key = uuid.UUID(delivery_id)
    except ValueError:
        raise NotFound("no such delivery") from None
    async with runtime.uow() as uow:
        original = await repository.delivery_for_update(uow.conn, key)
        if original is None:
            raise NotFound("no such delivery")
        if original["state"] != "failed":
            raise Conflict(f"only failed deliveries are resent; this one is {original['state']}")
        existing = await repository.resend_of(uow.conn, key)
        if existing is not None:
            raise Conflict(f"already resent as delivery {existing}; resend that one if it failed too")
        new_id = await repository.add_resend(uow.conn, original, requested_by=requested_by,
                                             expires_at=expires_at(clock.now(), runtime.settings.reply_ttl_hours))
        await uow.commit()
    log.info("delivery %s resent as %s by %s", delivery_id, new_id, requested_by)
    return {"id": new_id, "resend_of": delivery_id, "state": "pending"}

"""notify's reactions to case events on wangge.cases: remember the contact, queue the replies."""
from __future__ import annotations

import logging
from typing import TypeVar

from shared.contracts import Envelope, InvalidMessage, parse_event
from shared.contracts.cases import CaseAccepted, CaseReported
from shared.contracts.registry import EventModel
from shared.contracts.replies import ReplyIssued
from shared.runtime import ServiceRuntime
from shared.uow import UnitOfWork

from services.notify.adapters import repository
from services.notify.domain.replies import ReplyTemplates, mask_address, plan_acknowledgement
from services.notify.metrics import count_delivery

log = logging.getLogger(__name__)

CONSUMER = "notify:cases"
SOURCE = "notify"
E = TypeVar("E", bound=EventModel)


class CaseEventHandlers:
    """Each event in the consumer's unit of work: claim it, apply it (the consumer commits)."""

    # The case events notify answers; the consumer skips the others before they reach it.
    TYPES = frozenset({CaseReported.TYPE, CaseAccepted.TYPE})

    def __init__(self, runtime: ServiceRuntime, templates: ReplyTemplates, signature: str):
        self._runtime = runtime
        self._templates = templates
        self._signature = signature

    async def handle(self, envelope: Envelope, uow: UnitOfWork) -> None:
        """Dispatch one wangge.cases event by type; types notify does not answer are skipped unparsed."""
        if envelope.type == CaseReported.TYPE:
            await self._on_reported(envelope, uow)
        elif envelope.type == CaseAccepted.TYPE:
            await self._on_accepted(envelope, uow)
        # Later, each with its own template and kind (and a contact lookup like _on_accepted):
        #   case.rejected → "rejection" (with the reason); case.merged → "progress" (follow case X);
        #   case.dispatched / task progress → "progress"; case.closed → "resolution" then "survey";
        #   case.explained → "explanation".

    async def _on_reported(self, envelope: Envelope, uow: UnitOfWork) -> None:
        event = _parse(envelope, CaseReported)
        case_id = _case_id(envelope)
        phone = event.reporter.phone if event.reporter else None
        if not await uow.claim(CONSUMER, envelope.id):
            return
        if phone and phone.strip():
            await repository.save_contact(
                uow.conn, case_id=case_id, case_no=event.case_no,
                name=event.reporter.name if event.reporter else None, phone=phone.strip(), event_id=envelope.id,
            )

    async def _on_accepted(self, envelope: Envelope, uow: UnitOfWork) -> None:
        event = _parse(envelope, CaseAccepted)
        case_id = _case_id(envelope)
        if not await uow.claim(CONSUMER, envelope.id):
            return
        contact = await repository.contact_of(uow.conn, case_id)
        if contact is None:
            log.info("case %s accepted: no resident phone on record, no acknowledgement to send", event.case_no)
            return
        plan = plan_acknowledgement(
            self._templates, case_no=event.case_no, phone=contact["phone"], signature=self._signature
        )
        delivery_id = await repository.add_delivery(
            uow.conn, plan, case_id=case_id, case_no=event.case_no, event_id=envelope.id
        )
        if delivery_id is None:
            log.info("case %s: acknowledgement already queued; not adding another", event.case_no)
            return
        if plan.state == "held":
            # Nothing for the worker to do: the reply is settled now, in this transaction.
            emit_reply(
                uow, self._runtime.topics.replies, case_id=case_id, case_no=event.case_no, kind=plan.kind,
                channel=plan.channel, to=plan.to, text=plan.text, state=plan.state,
                delivery_id=delivery_id, detail=plan.detail,
            )
        uow.after_commit(lambda: count_delivery(plan.channel, plan.kind, plan.state))
        uow.after_commit(lambda: log.info("case %s: %s %s to %s", event.case_no, plan.kind, plan.state,
                                          mask_address(plan.to)))


def emit_reply(
    uow: UnitOfWork, topic: str, *, case_id: str, case_no: str, kind: str, channel: str, to: str, text: str,
    state: str, delivery_id: str, detail: str | None,
) -> None:
    """Queue reply.issued (address masked, key = case id) in the unit of work that settled the delivery."""
    reply = ReplyIssued(
        case_no=case_no, kind=kind, channel=channel, to=mask_address(to), text=text,
        state=state, delivery_id=delivery_id, detail=detail,
    )
    uow.emit(topic, reply.envelope(source=SOURCE, case_id=case_id))


def _parse(envelope: Envelope, model: type[E]) -> E:
    event = parse_event(envelope)
    if not isinstance(event, model):  # the registry maps each type to one model: a bug if this fires
        raise InvalidMessage(f"{envelope.type} did not parse as {model.__name__}")
    return event


def _case_id(envelope: Envelope) -> str:
    if not envelope.case_id:
        raise InvalidMessage(f"{envelope.type} without case_id: notify cannot tell which case it is about")
    return envelope.case_id

"""notify's reactions to case events on wangge.cases and to contacts on wangge.contacts: remember
contacts and followers, keep the resident-facing status, queue the replies, open surveys, schedule
the erasure of the residents' data.

The two topics have no order between them: a reply planned for a case whose contact has not arrived
yet waits (delivery state awaiting_contact) and goes out as soon as the contact does."""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Awaitable, Callable, TypeVar

from shared.clock import now, to_street_time
from shared.contracts import Envelope, InvalidMessage, parse_event
from shared.contracts.cases import (
    CaseAccepted,
    CaseClosed,
    CaseEscalated,
    CaseExplained,
    CaseExtensionDecided,
    CaseMerged,
    CaseRejected,
    CaseReopened,
    CaseReported,
    CaseSigned,
    STATE_AFTER,
)
from shared.contracts.contacts import ContactRecorded
from shared.contracts.registry import EventModel
from shared.contracts.replies import ReplyIssued, ReplyKind
from shared.personal_data import mask_address, normalise_phone, sms_number
from shared.runtime import ServiceRuntime
from shared.street import DutyRoster
from shared.street_rules import StreetRules
from shared.residents import survey_token
from shared.settings import Settings
from shared.uow import UnitOfWork

from services.notify.adapters import repository
from services.notify.adapters import webhooks
from services.notify.adapters.templates import EditedTemplates
from services.notify.domain.webhooks import follows
from services.notify.domain.delivery import expires_at
from services.notify.domain.replies import (
    STAFF_KINDS,
    DeliveryPlan,
    ReplyTemplates,
    brief,
    choose_route,
    plan_acknowledgement,
    plan_reply,
    plan_without_contact,
    street_moment,
)
from services.notify.domain.residents import survey_closes_at
from services.notify.metrics import count_delivery

log = logging.getLogger(__name__)

CONSUMER = "notify:cases"
CONTACTS_CONSUMER = "notify:contacts"
SOURCE = "notify"
E = TypeVar("E", bound=EventModel)
Reaction = Callable[[Envelope, EventModel, str, UnitOfWork], Awaitable[None]]


class CaseEventHandlers:
    """Each event in the consumer's unit of work: claim it, apply it (the consumer commits)."""

    # The case events notify answers or folds into a case's status; the consumer skips the others.
    TYPES = frozenset(STATE_AFTER) | {CaseExtensionDecided.TYPE, CaseEscalated.TYPE}

    # Reactions that take the residents lock themselves, only where they must (it is held until the whole batch
    # commits). case.reported only notes that a contact is coming: the contact.recorded published beside it must
    # not wait for this batch.
    LOCKS_ITSELF = frozenset({CaseReported.TYPE})
    # Reactions that concern no resident at all (the residents lock is not theirs to take).
    NO_RESIDENTS = frozenset({CaseEscalated.TYPE})

    def __init__(self, runtime: ServiceRuntime, templates: ReplyTemplates, signature: str, street_rules: StreetRules,
                 duty: DutyRoster = DutyRoster()):
        self._runtime = runtime
        self._duty = duty
        self._templates = templates
        self._edited = EditedTemplates(templates)
        self._signature = signature
        # The survey window is the street configuration's in force (learnt from supervision), not a setting of ours.
        self._street_rules = street_rules
        self._settings = runtime.settings
        # Types missing here only move the status (dispatched, returned, suspended, …).
        self._reactions: dict[str, Reaction] = {
            CaseReported.TYPE: self._on_reported,
            CaseAccepted.TYPE: self._on_accepted,
            CaseRejected.TYPE: self._on_rejected,
            CaseMerged.TYPE: self._on_merged,
            CaseSigned.TYPE: self._on_signed,
            CaseExtensionDecided.TYPE: self._on_extension_decided,
            CaseExplained.TYPE: self._on_explained,
            CaseClosed.TYPE: self._on_closed,
            CaseReopened.TYPE: self._on_reopened,
            CaseEscalated.TYPE: self._on_escalated,
        }

    async def handle(self, envelope: Envelope, uow: UnitOfWork) -> None:
        """Parse, claim, apply the reaction of this type and record the state it moves the case to."""
        if envelope.type not in self.TYPES:
            return
        event = parse_event(envelope)
        case_id = _case_id(envelope)
        if not await uow.claim(CONSUMER, envelope.id):
            return
        reaction = self._reactions.get(envelope.type)
        if reaction is not None:
            # The street's edited texts in force (PUT /api/v1/admin/templates/…), whichever instance saved them.
            await self._edited.refresh(uow.conn)
            if envelope.type not in self.LOCKS_ITSELF | self.NO_RESIDENTS:
                await repository.lock_residents(uow.conn, case_id)
            await reaction(envelope, event, case_id, uow)
        state = STATE_AFTER.get(envelope.type)
        if state is not None:
            merged = event if isinstance(event, CaseMerged) else None
            await repository.set_status(
                uow.conn, case_id=case_id, case_no=_case_no(event), state=state, event_id=envelope.id,
                at=envelope.occurred_at,
                followed_case_id=merged.into_case_id if merged else None,
                followed_case_no=merged.into_case_no if merged else None,
            )

    # ---- reactions ---------------------------------------------------------------------------

    async def _on_reported(self, envelope: Envelope, event: EventModel, case_id: str, uow: UnitOfWork) -> None:
        event = _as(event, CaseReported)
        await repository.record_source(uow.conn, case_id, event.source)  # the reply channel is chosen by it
        phone = event.reporter.phone.strip() if event.reporter and event.reporter.phone else ""
        if not phone:
            if event.reporter and event.reporter.email:
                # Only an e-mail given (masked here): the contact with it comes on wangge.contacts.
                await repository.expect_contact(uow.conn, case_id=case_id, case_no=event.case_no,
                                                event_id=envelope.id)
            return  # no phone or e-mail given: no one to answer
        if "*" in phone:
            # Masked, as intake publishes it: the contact itself comes on wangge.contacts.
            await repository.expect_contact(uow.conn, case_id=case_id, case_no=event.case_no, event_id=envelope.id)
            return
        # A case.reported written before contacts had their own topic still carries the number in clear.
        await repository.lock_residents(uow.conn, case_id)
        name = event.reporter.name if event.reporter else None
        await self._contact_arrived(uow, envelope, case_id, event.case_no, name, phone)

    async def _on_accepted(self, envelope: Envelope, event: EventModel, case_id: str, uow: UnitOfWork) -> None:
        event = _as(event, CaseAccepted)
        # The acknowledgement is the reporter's alone: followers were told when their report was merged.
        contact = await repository.contact_of(uow.conn, case_id)
        if contact is not None:
            plan = plan_acknowledgement(self._templates, case_no=event.case_no, phone=contact["phone"],
                                        signature=self._signature, email=contact["email"],
                                        source=await repository.source_of(uow.conn, case_id))
        else:
            standing = await repository.reporter_standing(uow.conn, case_id)
            if standing == "none":
                log.info("case %s accepted: no resident phone given, no acknowledgement to send", event.case_no)
                text = self._templates.render("acknowledgement", signature=self._signature, case_no=event.case_no)
                await self._to_webhooks(uow, envelope, case_id, event.case_no, DeliveryPlan(
                    "acknowledgement", "sms", "", text, "pending", template="acknowledgement"))
                return
            plan = plan_without_contact(self._templates, "acknowledgement", "acknowledgement",
                                        erased=standing == "erased", signature=self._signature,
                                        case_no=event.case_no)
        await self._queue(uow, envelope, case_id, event.case_no, plan)
        await self._to_webhooks(uow, envelope, case_id, event.case_no, plan)

    async def _on_rejected(self, envelope: Envelope, event: EventModel, case_id: str, uow: UnitOfWork) -> None:
        event = _as(event, CaseRejected)
        await self._reply(uow, envelope, case_id, event.case_no, "rejection", "rejection", reason=brief(event.reason))
        # No survey for a rejected report: its residents' data is due the configured time after the rejection.
        await repository.schedule_erasure(uow.conn, case_id=case_id, case_no=event.case_no,
                                          window_closes_at=envelope.occurred_at)

    async def _on_merged(self, envelope: Envelope, event: EventModel, case_id: str, uow: UnitOfWork) -> None:
        event = _as(event, CaseMerged)
        # Told now, about their own report; from here on they hear the followed case's replies.
        await self._reply(uow, envelope, case_id, event.case_no, "progress", "progress_merged", into=event.into_case_no)
        added = await repository.add_followers(uow.conn, into_case_id=event.into_case_id, case_id=case_id,
                                               case_no=event.case_no, event_id=envelope.id)
        log.info("case %s merged into %s: %d resident(s) now follow it", event.case_no, event.into_case_no, added)

    async def _on_signed(self, envelope: Envelope, event: EventModel, case_id: str, uow: UnitOfWork) -> None:
        event = _as(event, CaseSigned)
        await self._reply(uow, envelope, case_id, event.case_no, "progress", "progress_signed")

    async def _on_extension_decided(self, envelope: Envelope, event: EventModel, case_id: str,
                                    uow: UnitOfWork) -> None:
        event = _as(event, CaseExtensionDecided)
        if not event.approved:
            return  # a denied request changes nothing the resident was told
        await self._reply(uow, envelope, case_id, event.case_no, "progress", "progress_extended",
                          due=street_moment(event.due_at))

    async def _on_explained(self, envelope: Envelope, event: EventModel, case_id: str, uow: UnitOfWork) -> None:
        event = _as(event, CaseExplained)
        await self._reply(uow, envelope, case_id, event.case_no, "explanation", "explanation",
                          explanation=brief(event.explanation))

    async def _on_closed(self, envelope: Envelope, event: EventModel, case_id: str, uow: UnitOfWork) -> None:
        event = _as(event, CaseClosed)
        if event.outcome == "resolved":
            await self._reply(uow, envelope, case_id, event.case_no, "resolution", "resolution",
                              result=brief(event.result))
        window_days = (await self._street_rules.current(uow.conn)).survey_window_days
        closes_at = survey_closes_at(event.closed_at, window_days)
        survey_id = await repository.open_survey(uow.conn, case_id=case_id, case_no=event.case_no,
                                                 event_id=envelope.id, opened_at=now(), closes_at=closes_at)
        # The resident page answers it from a signed link (/my/?s=…): no phone typed, valid until the window closes.
        link = survey_link(self._runtime.settings, survey_id, closes_at)
        await self._reply(uow, envelope, case_id, event.case_no, "survey", "survey", closes=street_moment(closes_at),
                          survey_link=link)
        await repository.schedule_erasure(uow.conn, case_id=case_id, case_no=event.case_no, window_closes_at=closes_at)
        log.info("case %s closed (%s): survey %s open until %s", event.case_no, event.outcome, survey_id,
                 closes_at.isoformat())

    async def _on_reopened(self, envelope: Envelope, event: EventModel, case_id: str, uow: UnitOfWork) -> None:
        event = _as(event, CaseReopened)
        await self._reply(uow, envelope, case_id, event.case_no, "progress", "progress_reopened")
        # Open again: nothing is erased while it is (a reopening after the erasure finds no contact).
        await repository.schedule_erasure(uow.conn, case_id=case_id, case_no=event.case_no, window_closes_at=None)

    async def _on_escalated(self, envelope: Envelope, event: EventModel, case_id: str, uow: UnitOfWork) -> None:
        """An escalation to the street leadership: one SMS to the leader on duty (带班领导) that street day. The
        delivery is keyed by this event's id, so a replay or a second instance sends nothing more."""
        event = _as(event, CaseEscalated)
        if event.level != "leadership":
            return  # the community and the command center learn it on their task topics
        day = to_street_time(envelope.occurred_at).date()
        leader = self._duty.on_duty(day)
        if leader is None:
            log.warning("case %s escalated to the street leadership, but the duty roster names no leader for %s: "
                        "no SMS sent", event.case_no, day.isoformat())
            return
        plan = plan_reply(self._templates, "escalation", "escalation_leadership", phone=leader.phone,  # type: ignore[arg-type]
                          signature=self._signature, case_no=event.case_no, leader=leader.name,
                          reason=brief(event.reason))
        await self._queue(uow, envelope, case_id, event.case_no, plan)

    # ---- queueing replies --------------------------------------------------------------------

    async def _reply(self, uow: UnitOfWork, envelope: Envelope, case_id: str, case_no: str, kind: ReplyKind,
                     template: str, **values: object) -> None:
        """One reply of this kind to the case's reporter and every follower; for a reporter whose contact has
        not arrived yet, a reply that waits for it; for one whose contact was erased, a reply held saying so."""
        source = await repository.source_of(uow.conn, case_id)
        for who in await repository.recipients_of(uow.conn, case_id):
            phone = who["phone"]
            # The reporter is answered on their channel (choose_route). Followers (merged duplicates) by SMS; one who
            # gave no mobile, by the e-mail they gave (else they would hear nothing).
            email = who["email"] if who["reporter"] or sms_number(phone) is None else None
            plan = plan_reply(self._templates, kind, template, phone=phone, signature=self._signature,
                              case_no=case_no, email=email, source=source, **values)
            await self._queue(uow, envelope, case_id, case_no, plan)
        standing = await repository.reporter_standing(uow.conn, case_id)
        if standing in ("awaiting", "erased"):
            plan = plan_without_contact(self._templates, kind, template, erased=standing == "erased",
                                        signature=self._signature, case_no=case_no, **values)
            await self._queue(uow, envelope, case_id, case_no, plan)
        text = self._templates.render(template, signature=self._signature, case_no=case_no, **values)
        await self._to_webhooks(uow, envelope, case_id, case_no, DeliveryPlan(kind, "sms", "", text, "pending",
                                                                            template=template))

    async def _to_webhooks(self, uow: UnitOfWork, envelope: Envelope, case_id: str, case_no: str,
                           reply: DeliveryPlan) -> None:
        """A copy of a reply for every integrator's endpoint that follows the case (by how it came in). The
        delivery names the endpoint by id: the URL is the configured one, read when it is sent."""
        source = await repository.source_of(uow.conn, case_id)
        for endpoint in await webhooks.enabled_endpoints(uow.conn):
            if follows(list(endpoint["sources"]), source):
                await self._queue(uow, envelope, case_id, case_no, DeliveryPlan(
                    reply.kind, "webhook", endpoint["id"], reply.text, "pending", None, reply.template))

    # ---- contacts ------------------------------------------------------------------------------

    async def on_contact(self, envelope: Envelope, uow: UnitOfWork) -> None:
        """contact.recorded on wangge.contacts: remember who to answer, and send what waited for it."""
        if envelope.type != ContactRecorded.TYPE:
            raise InvalidMessage(f"wangge.contacts carries {ContactRecorded.TYPE} only, not {envelope.type!r}")
        contact = _as(parse_event(envelope), ContactRecorded)
        case_id = _case_id(envelope)
        if not await uow.claim(CONTACTS_CONSUMER, envelope.id):
            return
        await repository.lock_residents(uow.conn, case_id)
        if await repository.is_erased(uow.conn, case_id):
            # A replay of the topic after the erasure: the data stays erased.
            log.info("case %s: contact arrived after its erasure; not kept", contact.case_no)
            return
        await self._contact_arrived(uow, envelope, case_id, contact.case_no, contact.name, contact.phone.strip(),
                                    email=contact.email)

    async def _contact_arrived(self, uow: UnitOfWork, envelope: Envelope, case_id: str, case_no: str,
                               name: str | None, phone: str, email: str | None = None) -> None:
        norm = normalise_phone(phone)
        if not await repository.save_contact(uow.conn, case_id=case_id, case_no=case_no, name=name, phone=phone,
                                             phone_norm=norm, event_id=envelope.id, email=email):
            # The case has its resident already: the first contact stays (nothing is released to another phone).
            log.warning("case %s: a second contact (event %s) ignored; the first one is kept", case_no, envelope.id)
            return
        source = await repository.source_of(uow.conn, case_id)
        # Merged before its contact arrived: the resident follows the case it was merged into from now on.
        followed = await repository.follow_late(uow.conn, case_id=case_id, case_no=case_no, phone=phone,
                                                phone_norm=norm, event_id=envelope.id, email=email)
        released = 0
        for row in await repository.awaiting_deliveries(uow.conn, case_id):
            channel, to, state, detail = choose_route(phone=phone, email=email, source=source)
            if not await repository.release_delivery(uow.conn, row["id"], to=to, state=state, detail=detail,
                                                     channel=channel):
                continue
            released += 1
            if state == "held":
                emit_reply(uow, self._runtime.topics.replies, case_id=case_id, case_no=row["case_no"],
                           kind=row["kind"], channel=channel, to=to, text=row["text"], state=state,
                           delivery_id=row["id"], detail=detail, event_id=row["source_event_id"])
        if released or followed:
            uow.after_commit(lambda: log.info("case %s: contact arrived; %d waiting repl%s released, following %d "
                                              "case(s)", case_no, released, "y" if released == 1 else "ies",
                                              followed))

    async def _queue(self, uow: UnitOfWork, envelope: Envelope, case_id: str, case_no: str,
                     plan: DeliveryPlan) -> None:
        delivery_id = await repository.add_delivery(
            uow.conn, plan, case_id=case_id, case_no=case_no, event_id=envelope.id,
            expires_at=expires_at(now(), self._settings.reply_ttl_hours),
        )
        if delivery_id is None:
            log.info("case %s: %s to %s already queued; not adding another", case_no, plan.kind,
                     mask_address(plan.to))
            return
        if plan.state == "held" and plan.kind not in STAFF_KINDS:
            # Nothing for the worker to do: the reply is settled now, in this transaction.
            emit_reply(
                uow, self._runtime.topics.replies, case_id=case_id, case_no=case_no, kind=plan.kind,
                channel=plan.channel, to=plan.to, text=plan.text, state=plan.state,
                delivery_id=delivery_id, detail=plan.detail, event_id=envelope.id,
            )
        uow.after_commit(lambda: count_delivery(plan.channel, plan.kind, plan.state))
        uow.after_commit(lambda: log.info("case %s: %s %s to %s", case_no, plan.kind, plan.state,
                                          mask_address(plan.to)))


def survey_link(settings: Settings, survey_id: str, closes_at: datetime) -> str:
    """The survey's signed link on the resident page (template variable {{ survey_link }})."""
    token = survey_token(settings.resident_secret(), str(survey_id), closes_at)
    return f"{settings.public_url.rstrip('/')}/my/?s={token}"


def emit_reply(
    uow: UnitOfWork, topic: str, *, case_id: str, case_no: str, kind: str, channel: str, to: str, text: str,
    state: str, delivery_id: str, detail: str | None, event_id: str | None = None,
) -> None:
    """Queue reply.issued (address masked, key = case id) in the unit of work that settled the delivery. `event_id`:
    the case event the reply answers (the delivery's source_event_id), shared by the copies of one reply."""
    reply = ReplyIssued(
        case_no=case_no, kind=kind, channel=channel, to=mask_address(to), text=text,
        state=state, delivery_id=delivery_id, detail=detail, event_id=event_id,
    )
    uow.emit(topic, reply.envelope(source=SOURCE, case_id=case_id))


def _as(event: EventModel, model: type[E]) -> E:
    if not isinstance(event, model):  # the registry maps each type to one model: a bug if this fires
        raise InvalidMessage(f"{model.TYPE} did not parse as {model.__name__}")
    return event


def _case_no(event: EventModel) -> str:
    case_no = getattr(event, "case_no", None)
    if not case_no:
        raise InvalidMessage(f"{event.TYPE} without case_no")
    return case_no


def _case_id(envelope: Envelope) -> str:
    if not envelope.case_id:
        raise InvalidMessage(f"{envelope.type} without case_id: notify cannot tell which case it is about")
    return envelope.case_id

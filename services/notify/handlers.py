"""notify's reactions to case events on wangge.cases and to contacts on wangge.contacts: remember contacts and
followers, keep the resident-facing status, queue the replies, open surveys, schedule the erasure of the residents'
data.

Each handler takes a run of one event type from a partition's batch as a set (shared/messagebus.py; bootstrap.py
registers them by type and hands in the Replier): a batch of acceptances is a handful of statements — the templates'
version, the residents' locks, what notify knows of each case, the webhooks, the deliveries, the statuses — not a
handful per case. The time comes from the Replier's clock.

The two topics have no order between them: a reply planned for a case whose contact has not arrived yet waits
(delivery state awaiting_contact) and goes out as soon as the contact does."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.clock import Clock, to_street_time
from shared.contracts.cases import (
    STATE_AFTER, CaseAccepted, CaseClosed, CaseEscalated, CaseExplained, CaseExtensionDecided, CaseMerged,
    CaseRejected, CaseReopened, CaseReported, CaseSigned,
)
from shared.contracts.contacts import ContactRecorded
from shared.contracts.replies import ReplyIssued, ReplyKind
from shared.messagebus import Message
from shared.personal_data import mask_address, normalise_phone, sms_number
from shared.residents import survey_token
from shared.settings import Settings
from shared.street import DutyRoster
from shared.street_rules import StreetRules
from shared.topics import Topics
from shared.uow import UnitOfWork

from services.notify.adapters import batch_store, repository
from services.notify.adapters.batch_store import ContactRow, Facts, NewDelivery, StatusRow
from services.notify.adapters.templates import LAST_EDIT, EditedTemplates
from services.notify.adapters.webhooks import ENABLED_ENDPOINTS_JSON
from services.notify.domain.delivery import expires_at
from services.notify.domain.replies import (
    STAFF_KINDS, DeliveryPlan, ReplyTemplates, brief, choose_route, plan_acknowledgement, plan_reply,
    plan_without_contact, street_moment,
)
from services.notify.domain.residents import survey_closes_at
from services.notify.domain.webhooks import follows
from services.notify.metrics import count_delivery

log = logging.getLogger(__name__)

CONSUMER = "notify:cases"
CONTACTS_CONSUMER = "notify:contacts"
SOURCE = "notify"


@dataclass(frozen=True)
class Occasion:
    """One reply to plan for the residents of a case: the event that calls for it, the kind, template and values."""

    message: Message[Any]
    kind: ReplyKind
    template: str
    values: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ContactIn:
    """A resident's contact as it arrived (contact.recorded, or a case.reported from before contacts had a topic)."""

    case_id: str
    case_no: str
    name: str | None
    phone: str
    email: str | None
    event_id: str


class Replier:
    """Plans replies and queues them as deliveries, in the caller's unit of work, a batch at a time.

    What it needs (the templates and the street's edited texts, the signature, the street's rules, the duty roster,
    the settings that sign survey links, the clock) is handed in by bootstrap.py."""

    def __init__(self, *, topics: Topics, templates: ReplyTemplates, settings: Settings, street_rules: StreetRules,
                 duty: DutyRoster, clock: Clock):
        self.topics = topics
        self.duty = duty
        self.street_rules = street_rules  # the survey window in force (learnt from supervision)
        self.settings = settings
        self.signature = settings.sms_signature
        self.clock = clock
        self._edited = EditedTemplates(templates)

    async def templates(self, uow: UnitOfWork) -> ReplyTemplates:
        """The reply texts in force (PUT /api/v1/admin/templates/…, whichever instance saved them): one read."""
        return await self._edited.refresh(uow.conn)

    async def templates_and_endpoints(self, uow: UnitOfWork) -> tuple[ReplyTemplates, list[dict[str, Any]]]:
        """The reply texts in force and the integrators' enabled webhooks, in one round trip: a batch's replies need
        both (two statements before, per batch; at a steady stream a batch is a case or two — issue 17)."""
        row = await uow.conn.fetchrow(f"SELECT ({LAST_EDIT}) AS last_edit, ({ENABLED_ENDPOINTS_JSON}) AS endpoints")
        return await self._edited.at(uow.conn, row["last_edit"]), row["endpoints"]

    async def reply_all(self, uow: UnitOfWork, occasions: list[Occasion]) -> None:
        """Each occasion's reply to its case's reporter and every follower; for a reporter whose contact has not
        arrived yet, a reply that waits for it; for one whose contact was erased, a reply held saying so; and a
        copy for every integrator's webhook that follows the case. A few statements for the whole list."""
        if not occasions:
            return
        conn = uow.conn
        templates, endpoints = await self.templates_and_endpoints(uow)
        case_ids = [o.message.case_id for o in occasions]
        facts = await batch_store.facts_of(conn, case_ids)
        recipients = await batch_store.recipients_of(conn, case_ids)
        queued: list[tuple[Message[Any], DeliveryPlan]] = []
        for o in occasions:
            m, case_no = o.message, o.message.event.case_no
            known = facts.get(m.case_id, batch_store.NO_FACTS)
            for who in recipients.get(m.case_id, []):
                # The reporter is answered on their channel (choose_route). Followers (merged duplicates) by SMS; one
                # who gave no mobile, by the e-mail they gave (else they would hear nothing).
                email = who["email"] if who["reporter"] or sms_number(who["phone"]) is None else None
                queued.append((m, plan_reply(templates, o.kind, o.template, phone=who["phone"],
                                             signature=self.signature, case_no=case_no, email=email,
                                             source=known.source, **o.values)))
            if known.standing in ("awaiting", "erased"):
                queued.append((m, plan_without_contact(templates, o.kind, o.template,
                                                       erased=known.standing == "erased", signature=self.signature,
                                                       case_no=case_no, **o.values)))
            text = templates.render(o.template, signature=self.signature, case_no=case_no, **o.values)
            queued += self.copies(endpoints, known, m, DeliveryPlan(o.kind, "sms", "", text, "pending",
                                                                    template=o.template))
        await self.queue(uow, queued)

    def copies(self, endpoints: list[Any], facts: Facts, message: Message[Any],
               reply: DeliveryPlan) -> list[tuple[Message[Any], DeliveryPlan]]:
        """A copy of a reply for every integrator's endpoint that follows the case (by how it came in). The
        delivery names the endpoint by id: the URL is the configured one, read when it is sent."""
        return [(message, DeliveryPlan(reply.kind, "webhook", endpoint["id"], reply.text, "pending", None,
                                       reply.template))
                for endpoint in endpoints if follows(list(endpoint["sources"]), facts.source)]

    async def queue(self, uow: UnitOfWork, planned: list[tuple[Message[Any], DeliveryPlan]]) -> None:
        """Insert the deliveries in one statement; a reply held (no channel reaches the resident) is settled now,
        with its reply.issued. One that its occasion has already is not added again."""
        if not planned:
            return
        until = expires_at(self.clock.now(), self.settings.reply_ttl_hours)
        rows = [batch_store.new_delivery(plan, case_id=m.case_id, case_no=m.event.case_no, event_id=m.id,
                                         expires_at=until) for m, plan in planned]
        inserted = await batch_store.add_deliveries(uow.conn, rows)
        added: list[NewDelivery] = []
        for row in rows:
            plan = row.plan
            if row.id not in inserted:
                log.info("case %s: %s to %s already queued; not adding another", row.case_no, plan.kind,
                         mask_address(plan.to))
                continue
            added.append(row)
            if plan.state == "held" and plan.kind not in STAFF_KINDS:
                # Nothing for the worker to do: the reply is settled now, in this transaction.
                emit_reply(uow, self.topics.replies, case_id=row.case_id, case_no=row.case_no, kind=plan.kind,
                           channel=plan.channel, to=plan.to, text=plan.text, state=plan.state, delivery_id=row.id,
                           detail=plan.detail, event_id=row.event_id)

        def counted() -> None:
            for row in added:
                count_delivery(row.plan.channel, row.plan.kind, row.plan.state)
                log.info("case %s: %s %s to %s", row.case_no, row.plan.kind, row.plan.state, mask_address(row.plan.to))
        uow.after_commit(counted)

    async def contacts_arrived(self, uow: UnitOfWork, contacts: list[ContactIn]) -> None:
        """Remember who to answer for each case (the first contact stays), follow the cases they were merged into
        before their contact came, and release the replies that waited for it. The residents' locks are held."""
        if not contacts:
            return
        conn = uow.conn
        rows = [ContactRow(c.case_id, c.case_no, c.name, c.phone, normalise_phone(c.phone), c.event_id, c.email)
                for c in contacts]
        kept_events = await batch_store.save_contacts(conn, rows)
        kept = [c for c in contacts if c.event_id in kept_events]
        for c in contacts:
            if c.event_id not in kept_events:
                # The case has its resident already: nothing is released to another phone.
                log.warning("case %s: a second contact (event %s) ignored; the first one is kept", c.case_no,
                            c.event_id)
        if not kept:
            return
        case_ids = [c.case_id for c in kept]
        # Merged before its contact arrived: the resident follows the case it was merged into from now on.
        followed = await batch_store.follow_late(conn, case_ids)
        by_case = {c.case_id: c for c in kept}
        waiting = await batch_store.awaiting_deliveries(conn, case_ids)
        # How the cases came in (their replies' channel) only for those with replies waiting: a contact that arrives
        # before its case's acceptance — as often as not — has none, and costs a statement less (issue 17).
        facts = await batch_store.facts_of(conn, sorted({row["case_id"] for row in waiting}))
        routes = {}
        for row in waiting:
            c = by_case[row["case_id"]]
            channel, to, state, detail = choose_route(phone=c.phone, email=c.email, source=facts[c.case_id].source)
            routes[row["id"]] = batch_store.Release(row["id"], to, state, detail, channel)
        moved = await batch_store.release_all(conn, list(routes.values()))
        released: dict[str, int] = {}
        for row in waiting:
            if row["id"] not in moved:
                continue
            route = routes[row["id"]]
            released[row["case_id"]] = released.get(row["case_id"], 0) + 1
            if route.state == "held":
                emit_reply(uow, self.topics.replies, case_id=row["case_id"], case_no=row["case_no"],
                           kind=row["kind"], channel=route.channel, to=route.to, text=row["text"], state=route.state,
                           delivery_id=row["id"], detail=route.detail, event_id=row["source_event_id"])
        for case_id in set(released) | set(followed):
            n, case_no = released.get(case_id, 0), by_case[case_id].case_no
            uow.after_commit(lambda n=n, case_no=case_no, f=followed.get(case_id, 0): log.info(
                "case %s: contact arrived; %d waiting repl%s released, following %d case(s)", case_no, n,
                "y" if n == 1 else "ies", f))


# ---- the handlers the bus calls (bootstrap.py registers them by type) ----------------------------------------------

# The events whose handling reads or changes who a case's residents are, and so holds the case's residents' lock
# until the batch commits (repository.lock_residents): not case.reported, which only notes that a contact is coming
# (the contact.recorded published beside it must not wait for this batch) — unless it carries the phone itself; not
# the escalation, which concerns no resident; not the events that only move the status.
RESIDENTS_TYPES = frozenset({CaseAccepted, CaseRejected, CaseMerged, CaseSigned, CaseExtensionDecided, CaseExplained,
                             CaseClosed, CaseReopened})


async def lock_residents(messages: list[Message[Any]], uow: UnitOfWork) -> None:
    """Before any run of a batch of case events: the residents' locks of every case it concerns, in one statement
    and one order. Taken run by run (several statements), they deadlocked with the contacts consumer's."""
    await batch_store.lock_residents_of(uow.conn, [
        m.case_id for m in messages
        if type(m.event) in RESIDENTS_TYPES or (isinstance(m.event, CaseReported) and _phone_in_clear(m.event))])


def _phone_in_clear(event: CaseReported) -> bool:
    """A case.reported written before contacts had their own topic carries the reporter's number in clear."""
    phone = event.reporter.phone.strip() if event.reporter and event.reporter.phone else ""
    return bool(phone) and "*" not in phone


async def record_status(messages: list[Message[Any]], uow: UnitOfWork) -> None:
    """The resident-facing state each event moves its case to (STATE_AFTER), one statement for the run: a case's
    latest event in the run wins, as the events of one case arrive in order."""
    latest: dict[str, StatusRow] = {}
    for m in messages:
        merged = m.event if isinstance(m.event, CaseMerged) else None
        latest[m.case_id] = StatusRow(
            m.case_id, m.event.case_no, STATE_AFTER[m.envelope.type], m.id, m.occurred_at,
            merged.into_case_id if merged else None, merged.into_case_no if merged else None)
    await batch_store.set_statuses(uow.conn, list(latest.values()))


async def note_reported(messages: list[Message[CaseReported]], uow: UnitOfWork, replier: Replier) -> None:
    """How each case came in (its replies' channel is chosen by it), and whether a contact is on its way on
    wangge.contacts. No residents' lock: the contact.recorded published beside it must not wait for this batch."""
    conn = uow.conn
    await batch_store.record_sources(conn, [(m.case_id, m.event.source) for m in messages])
    expected: list[tuple[str, str, str]] = []
    in_clear: list[ContactIn] = []
    for m in messages:
        reporter = m.event.reporter
        phone = reporter.phone.strip() if reporter and reporter.phone else ""
        if not phone:
            if reporter and reporter.email:
                expected.append((m.case_id, m.event.case_no, m.id))  # only an e-mail given (masked here)
            continue  # no phone or e-mail given: no one to answer
        if "*" in phone:
            expected.append((m.case_id, m.event.case_no, m.id))  # masked, as intake publishes it
            continue
        # A case.reported written before contacts had their own topic still carries the number in clear.
        in_clear.append(ContactIn(m.case_id, m.event.case_no, reporter.name if reporter else None, phone, None, m.id))
    await batch_store.expect_contacts(conn, expected)
    await replier.contacts_arrived(uow, in_clear)  # their residents' locks taken first (lock_residents)


async def acknowledge(messages: list[Message[CaseAccepted]], uow: UnitOfWork, replier: Replier) -> None:
    """受理回执 to each accepted case's reporter (followers were told when their report was merged), and its copies
    for the webhooks. The hot path: the same few statements for one case or a partition's whole batch."""
    conn = uow.conn
    templates, endpoints = await replier.templates_and_endpoints(uow)
    case_ids = [m.case_id for m in messages]
    facts = await batch_store.facts_of(conn, case_ids)
    queued: list[tuple[Message[Any], DeliveryPlan]] = []
    for m in messages:
        known, case_no = facts[m.case_id], m.event.case_no
        if known.standing == "known":
            plan = plan_acknowledgement(templates, case_no=case_no, phone=known.phone or "",
                                        signature=replier.signature, email=known.email, source=known.source)
        elif known.standing == "none":
            log.info("case %s accepted: no resident phone given, no acknowledgement to send", case_no)
            text = templates.render("acknowledgement", signature=replier.signature, case_no=case_no)
            queued += replier.copies(endpoints, known, m, DeliveryPlan(
                "acknowledgement", "sms", "", text, "pending", template="acknowledgement"))
            continue
        else:
            plan = plan_without_contact(templates, "acknowledgement", "acknowledgement",
                                        erased=known.standing == "erased", signature=replier.signature,
                                        case_no=case_no)
        queued.append((m, plan))
        queued += replier.copies(endpoints, known, m, plan)
    await replier.queue(uow, queued)


async def answer_rejection(messages: list[Message[CaseRejected]], uow: UnitOfWork, replier: Replier) -> None:
    """Tell the reporter why; no survey for a rejected report: its residents' data is due the configured time after
    the rejection."""
    await replier.reply_all(uow, [Occasion(m, "rejection", "rejection", {"reason": brief(m.event.reason)})
                                  for m in messages])
    for m in messages:
        await repository.schedule_erasure(uow.conn, case_id=m.case_id, case_no=m.event.case_no,
                                          window_closes_at=m.occurred_at)


async def answer_merge(messages: list[Message[CaseMerged]], uow: UnitOfWork, replier: Replier) -> None:
    """The duplicate's residents are told now, about their own report; from here on they hear the followed case's
    replies. One message at a time: a merge may move followers that the next merge's reply must reach."""
    for m in messages:
        await replier.reply_all(uow, [Occasion(m, "progress", "progress_merged", {"into": m.event.into_case_no})])
        added = await repository.add_followers(uow.conn, into_case_id=m.event.into_case_id, case_id=m.case_id,
                                               case_no=m.event.case_no, event_id=m.id)
        log.info("case %s merged into %s: %d resident(s) now follow it", m.event.case_no, m.event.into_case_no,
                 added)


async def answer_signing(messages: list[Message[CaseSigned]], uow: UnitOfWork, replier: Replier) -> None:
    """The owner has taken the case: the residents hear it is being handled."""
    await replier.reply_all(uow, [Occasion(m, "progress", "progress_signed") for m in messages])


async def answer_extension(messages: list[Message[CaseExtensionDecided]], uow: UnitOfWork, replier: Replier) -> None:
    """An approved extension: the residents hear the new date (a denied request changes nothing they were told)."""
    approved = [m for m in messages if m.event.approved]
    await replier.reply_all(uow, [Occasion(m, "progress", "progress_extended", {"due": street_moment(m.event.due_at)})
                                  for m in approved])


async def answer_explanation(messages: list[Message[CaseExplained]], uow: UnitOfWork, replier: Replier) -> None:
    """解释说明: the owner's explanation, to the residents."""
    await replier.reply_all(uow, [Occasion(m, "explanation", "explanation",
                                           {"explanation": brief(m.event.explanation)}) for m in messages])


async def answer_closing(messages: list[Message[CaseClosed]], uow: UnitOfWork, replier: Replier) -> None:
    """A closed case: the result (if resolved), a survey open for the street's survey window with its signed link,
    and the erasure of the residents' data scheduled after the window."""
    conn = uow.conn
    window_days = (await replier.street_rules.current(conn)).survey_window_days
    occasions: list[Occasion] = []
    closings: list[tuple[Message[CaseClosed], datetime, str | None]] = []
    for m in messages:
        event = m.event
        if event.outcome == "resolved":
            occasions.append(Occasion(m, "resolution", "resolution", {"result": brief(event.result)}))
        closes_at = survey_closes_at(event.closed_at, window_days)
        survey_id = await repository.open_survey(conn, case_id=m.case_id, case_no=event.case_no, event_id=m.id,
                                                 opened_at=replier.clock.now(), closes_at=closes_at)
        # The resident page answers it from a signed link (/my/?s=…): no phone typed, valid until the window closes.
        link = survey_link(replier.settings, survey_id, closes_at)  # type: ignore[arg-type]
        occasions.append(Occasion(m, "survey", "survey", {"closes": street_moment(closes_at), "survey_link": link}))
        closings.append((m, closes_at, survey_id))
    await replier.reply_all(uow, occasions)
    for m, closes_at, survey_id in closings:
        await repository.schedule_erasure(conn, case_id=m.case_id, case_no=m.event.case_no,
                                          window_closes_at=closes_at)
        log.info("case %s closed (%s): survey %s open until %s", m.event.case_no, m.event.outcome, survey_id,
                 closes_at.isoformat())


async def answer_reopening(messages: list[Message[CaseReopened]], uow: UnitOfWork, replier: Replier) -> None:
    """Reopened: the residents hear it is handled again; nothing is erased while it is open (a reopening after the
    erasure finds no contact)."""
    await replier.reply_all(uow, [Occasion(m, "progress", "progress_reopened") for m in messages])
    for m in messages:
        await repository.schedule_erasure(uow.conn, case_id=m.case_id, case_no=m.event.case_no,
                                          window_closes_at=None)


async def alert_leader(messages: list[Message[CaseEscalated]], uow: UnitOfWork, replier: Replier) -> None:
    """An escalation to the street leadership: one SMS to the leader on duty (带班领导) that street day. The delivery
    is keyed by this event's id, so a replay or a second instance sends nothing more. No resident's lock: no
    resident is concerned."""
    templates = await replier.templates(uow)
    queued: list[tuple[Message[Any], DeliveryPlan]] = []
    for m in messages:
        event = m.event
        if event.level != "leadership":
            continue  # the community and the command center learn it on their task topics
        day = to_street_time(m.occurred_at).date()
        leader = replier.duty.on_duty(day)
        if leader is None:
            log.warning("case %s escalated to the street leadership, but the duty roster names no leader for %s: "
                        "no SMS sent", event.case_no, day.isoformat())
            continue
        queued.append((m, plan_reply(templates, "escalation", "escalation_leadership",  # type: ignore[arg-type]
                                     phone=leader.phone, signature=replier.signature, case_no=event.case_no,
                                     leader=leader.name, reason=brief(event.reason))))
    await replier.queue(uow, queued)


async def contacts_arrived(messages: list[Message[ContactRecorded]], uow: UnitOfWork, replier: Replier) -> None:
    """contact.recorded on wangge.contacts: remember who to answer, and send what waited for it."""
    case_ids = [m.case_id for m in messages]
    await batch_store.lock_residents_of(uow.conn, case_ids)
    erased = await batch_store.erased_among(uow.conn, case_ids)
    for m in messages:
        if m.case_id in erased:
            # A replay of the topic after the erasure: the data stays erased.
            log.info("case %s: contact arrived after its erasure; not kept", m.event.case_no)
    await replier.contacts_arrived(uow, [
        ContactIn(m.case_id, m.event.case_no, m.event.name, m.event.phone.strip(), m.event.email, m.id)
        for m in messages if m.case_id not in erased])


# ---- shared with the workers and the HTTP entrypoints ----------------------------------------------------------------

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

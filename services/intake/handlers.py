"""Intake's handlers on its message buses (bootstrap.py registers them by type, shared/messagebus.py):

- wangge.reports: a partition's batch of reports becomes numbered cases, once each, with their events in the outbox —
  a few statements for the whole batch (claims, the photos, the signers, which are cases already, the new rows), not a
  few per report. HTTP reports (commands.py) go through the same `store_reports`.
- wangge.cases: the public steps of intake's cases (Open311's servicerequestupdates, open/closed), set-based.
- wangge.replies: what notify told the residents, as updates of their requests, set-based.

What a handler needs is handed in by the bus: the `Reception` (topics, case numbers, the street, the clock…), the
public photos' key. No runtime, no global clock.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from services.intake.adapters import media as media_sql
from services.intake.adapters import report_store
from services.intake.adapters.case_numbers import CaseNumbers
from services.intake.adapters.report_store import NewReport, SenderKey
from services.intake.adapters.repository import StoredCase
from services.intake.adapters.step_store import CaseSteps
from services.intake.domain import open311
from services.intake.domain.assessment import Assessed, Locator, Rejected, assess
from services.intake.domain.case_numbers import format_case_no
from shared.auth import is_signed, update_signers
from shared.clock import Clock
from shared.contracts import InvalidMessage
from shared.contracts.cases import (CaseAccepted, CaseClosed, CasePersonalDataErased, CaseReopened, CaseReported)
from shared.contracts.common import OnTheSpot, Reporter
from shared.contracts.contacts import ContactRecorded
from shared.contracts.replies import ReplyIssued
from shared.contracts.reports import ReportSubmitted
from shared.messagebus import Message
from shared.personal_data import mask_email, mask_name, mask_personal, mask_phone_number
from shared.residents import resident_ids_of
from shared.settings import Settings
from shared.signing import SIGNER_HEADER
from shared.topics import Topics
from shared.uow import UnitOfWork

SOURCE = "intake"
REPORTS_CONSUMER = "intake:reports"
CASES_CONSUMER = "intake:cases"
REPLIES_CONSUMER = "intake:replies"

log = logging.getLogger(__name__)

# The credentials whose signed reports intake takes from wangge.reports (DESIGN: terminals, the hotline bridge).
REPORTING_ROLES = ("terminal", "hotline")


class ReportRejected(ValueError):
    """The report cannot become a case; the reason goes back to the sender."""


@dataclass(frozen=True)
class Reception:
    """What taking a report needs: where its events go, the case numbers, the street's geography and categories,
    the residents' key (who may follow it on /my/), whether reports on Kafka must be signed, and the clock."""

    topics: Topics
    numbers: CaseNumbers
    locator: Locator
    categories: frozenset[str]
    resident_key: bytes
    signatures_required: bool
    production: bool
    clock: Clock

    @classmethod
    def of(cls, settings: Settings, topics: Topics, numbers: CaseNumbers, locator: Locator, categories: frozenset[str],
           clock: Clock) -> "Reception":
        return cls(topics, numbers, locator, categories, settings.resident_secret(),
                   settings.profile == "production" or settings.require_signed_updates,
                   settings.profile == "production", clock)

    def assess(self, report: ReportSubmitted) -> Assessed:
        """Where the report lies and whether it is accepted now; ReportRejected when it cannot be a case."""
        outcome = assess(report, self.locator, self.categories)
        if isinstance(outcome, Rejected):
            raise ReportRejected(outcome.reason)
        if report.resolved_on_the_spot is not None:
            # 自行处置 is closed at acceptance: nobody is left to classify or locate it afterwards.
            if report.coordinator is None:
                raise ReportRejected("resolved_on_the_spot needs the coordinator who fixed it "
                                     "(自行处置须注明网格员 coordinator)")
            if not outcome.accepted:
                raise ReportRejected("resolved_on_the_spot: a problem fixed on the spot needs its category and a "
                                     f"place in the street ({outcome.hold_reason}; 自行处置须带类别和街道内位置)")
        return outcome


@dataclass(frozen=True)
class Incoming:
    """A report to store: what it says, how it was assessed, and who sent it (its idempotency scope)."""

    report: ReportSubmitted
    outcome: Assessed
    via: str              # http or kafka
    client: str | None    # the API client's actor over HTTP, the signing key (or unsigned:<source>) on Kafka

    @property
    def key(self) -> SenderKey:
        return (self.report.source, self.via, self.client or "", self.report.external_id)


async def store_reports(uow: UnitOfWork, reception: Reception, incoming: list[Incoming], *,
                        numbered: tuple[datetime, list[int]] | None = None) -> list[tuple[StoredCase, bool]]:
    """Store each report as a new case, numbered in the given order, or find the case its sender already made of it
    (the same report twice in the list is one case). Returns (case, created) per report, in order.

    `numbered`: when they were received and the numbers taken for them (HTTP takes its number before its unit of work
    holds a connection); otherwise now, and numbers taken here (one reservation at most for the batch)."""
    conn = uow.conn
    keys = list(dict.fromkeys(i.key for i in incoming))  # each sender's report once, at its first place
    existing = await report_store.found_by_senders(conn, keys)
    first = {}
    for item in incoming:
        first.setdefault(item.key, item)
    fresh = [first[k] for k in keys if k not in existing]
    if numbered is None:
        received = reception.clock.now()
        sequences = await reception.numbers.take_many(received.date(), len(fresh)) if fresh else []
    else:
        received, sequences = numbered
    rows = [_row(reception, item, received, sequence) for item, sequence in zip(fresh, sequences)]
    written = await report_store.insert_reports(conn, rows)
    lost = [item.key for item, row in zip(fresh, rows) if row.case_id not in written]
    if lost:
        # Another instance (or HTTP, or Kafka) took the same report meanwhile, and committed: its case is the one.
        existing |= await report_store.found_by_senders(conn, lost)
    made: dict[SenderKey, StoredCase] = {}
    for item, row, sequence in zip(fresh, rows, sequences):
        if row.case_id in written:
            made[item.key] = _emit_case(uow, reception.topics, item, row)
        elif numbered is None:
            reception.numbers.give_back(received.date(), sequence)
    answers: list[tuple[StoredCase, bool]] = []
    for item in incoming:
        if item.key in made and first[item.key] is item:
            answers.append((made[item.key], True))
        else:
            case = made.get(item.key) or existing.get(item.key)
            if case is None:
                raise RuntimeError(f"report {item.key} neither stored nor found")  # a bug, not input: set aside
            answers.append((case, False))
    return answers


def _row(reception: Reception, item: Incoming, received: datetime, sequence: int) -> NewReport:
    report, outcome = item.report, item.outcome
    # 自行处置 is the coordinator's own work: no resident is answered for it (no contact, no SMS).
    spot = on_the_spot(report)
    masked = masked_reporter(report.reporter) if spot is None else None
    return NewReport(
        case_id=uuid.uuid4(), case_no=format_case_no(received.date(), sequence), source=report.source,
        external_id=report.external_id, category=report.category,
        description=report.description,  # the original; what leaves intake is masked
        lon=outcome.location.lon if outcome.location else None, lat=outcome.location.lat if outcome.location else None,
        address=outcome.address, unit_grid=outcome.unit_grid,
        # Masked, like on wangge.cases: the contact in clear goes to notify alone, which erases it in time.
        reporter=masked.model_dump() if masked else None,
        coordinator=report.coordinator.model_dump() if report.coordinator else None,
        media=[str(m) for m in report.media], observed_at=report.observed_at, received_at=received,
        received_via=item.via, client=item.client, state="accepted" if outcome.accepted else "reported",
        hold_reason=outcome.hold_reason,
        # Who may follow and comment on it from /my/: the opaque ids of the mobile and e-mail it gave (not the phone
        # or the address: those go to notify alone). None for 自行处置: no resident is answered.
        resident_keys=resident_ids_of(reception.resident_key, phone=report.reporter.phone,
                                      email=report.reporter.email)
        if spot is None and report.reporter is not None else [],
    )


def _emit_case(uow: UnitOfWork, topics: Topics, item: Incoming, row: NewReport) -> StoredCase:
    """case.reported, the contact for notify and (when complete) case.accepted of a new case, in that order."""
    report, outcome = item.report, item.outcome
    case_id, received, spot = str(row.case_id), row.received_at, on_the_spot(report)
    description = mask_personal(report.description)
    reported = CaseReported(
        case_no=row.case_no, source=report.source, external_id=report.external_id, category=report.category,
        description=description, location=report.location, address=_masked(report.address),
        reporter=masked_reporter(report.reporter) if spot is None else None, coordinator=report.coordinator,
        media=list(row.media), observed_at=report.observed_at, unit_grid=outcome.unit_grid, resolved_on_the_spot=spot,
    )
    uow.emit(topics.cases, reported.envelope(source=SOURCE, case_id=case_id, occurred_at=received))
    contact = contact_of(report) if spot is None else None
    if contact is not None:
        # Before case.accepted in this transaction, though on another topic: notify copes with either order.
        uow.emit(topics.contacts, ContactRecorded(case_no=row.case_no, name=contact.name, phone=contact.phone or "",
                                                  email=contact.email)
                 .envelope(source=SOURCE, case_id=case_id, occurred_at=received))
    if outcome.accepted:
        accepted = CaseAccepted(
            case_no=row.case_no, category=outcome.category, unit_grid=outcome.unit_grid, description=description,
            location=outcome.location, address=_masked(outcome.address), media=list(row.media),
            resolved_on_the_spot=spot,
        )
        uow.emit(topics.cases, accepted.envelope(source=SOURCE, case_id=case_id, occurred_at=received))
    return StoredCase(case_id, row.case_no, row.state, outcome.unit_grid, report.category, outcome.hold_reason)


# ---- wangge.reports ----------------------------------------------------------------------------------------------

async def take_reports(messages: list[Message[ReportSubmitted]], uow: UnitOfWork, reception: Reception) -> None:
    """Reports on wangge.reports become cases, once each; one that cannot be a case raises InvalidMessage (the
    consumer then handles the batch again message by message and sets that one aside with the reason)."""
    outcomes = []
    for m in messages:
        try:
            outcomes.append(reception.assess(m.event))
        except ReportRejected as exc:
            raise InvalidMessage(str(exc)) from None
    missing = set(await media_sql.not_stored(uow.conn, sorted({str(u) for m in messages for u in m.event.media})))
    for m in messages:
        for url in m.event.media:
            if str(url) in missing:
                raise InvalidMessage(media_sql.not_stored_reason(str(url)))
    senders = await _senders(uow, reception, messages)
    await store_reports(uow, reception, [Incoming(m.event, outcome, "kafka", sender)
                                         for m, outcome, sender in zip(messages, outcomes, senders)])


@dataclass(frozen=True)
class SubmitReport:
    """A report sent over HTTP (POST /api/v1/reports, Open311's POST requests), a command on the reports' bus. It
    comes numbered: its sender took the number before the command's unit of work holds a connection (a block's
    reservation needs a connection of its own; with every connection held by a request waiting for a number, none
    would be left to reserve the next block)."""

    report: ReportSubmitted
    outcome: Assessed
    via: str
    client: str | None
    received_at: datetime
    sequence: int


async def submit_report(command: SubmitReport, uow: UnitOfWork, reception: Reception) -> tuple[StoredCase, bool]:
    """The case made of the report, or the one its sender made of it before: (case, created)."""
    [answer] = await store_reports(uow, reception, [Incoming(command.report, command.outcome, command.via,
                                                             command.client)],
                                   numbered=(command.received_at, [command.sequence]))
    return answer


async def _senders(uow: UnitOfWork, reception: Reception, messages: list[Message[ReportSubmitted]]) -> list[str]:
    """Who sent each report, as its de-duplication scope: the signing key of the terminal gateway's or the bridge's
    credential that signed it (shared/auth.py; all of the batch's keys looked up at once), never the envelope's
    `source`, which any producer writes — so a stranger publishing first with a predictable external_id makes a case
    of its own and never drops the real report. Unsigned reports are refused where signatures are required
    (production); elsewhere they share a scope of their own, which no signed sender's can be."""
    headers = [{key: value for key, value in (m.record.headers or ())} if m.record is not None else {}
               for m in messages]
    signed = [i for i, h in enumerate(headers) if is_signed(h)]
    records = [m.record for m in messages]
    signers = dict(zip(signed, await update_signers(
        uow.conn, [(headers[i], r.value, r.topic, r.key) for i in signed if (r := records[i]) is not None],
        production=reception.production))) if signed else {}
    senders = []
    for i, m in enumerate(messages):
        if i not in signers:
            if reception.signatures_required:
                raise InvalidMessage("report not accepted: not signed: a terminal gateway or the hotline bridge signs "
                                     "its reports with its credential's key (headers wangge-signer, wangge-ed25519)")
            senders.append(f"unsigned:{m.envelope.source}")
            continue
        signer = signers[i]
        if isinstance(signer, str):
            raise InvalidMessage(f"report not accepted: {signer}")
        if signer.role not in REPORTING_ROLES:
            raise InvalidMessage(f"report not accepted: signed by {signer.actor}; reports come from "
                                 f"{' or '.join(REPORTING_ROLES)} credentials")
        senders.append(f"key:{headers[i][SIGNER_HEADER].decode('ascii')}")
    return senders


# ---- wangge.cases -------------------------------------------------------------------------------------------------

async def follow_cases(messages: list[Message[object]], uow: UnitOfWork, photos: open311.PublicPhotos) -> None:
    """Public steps of cases on wangge.cases (open311.UPDATE_TYPES): kept for Open311's servicerequestupdates, the
    request's updated_datetime moved; case.closed / case.reopened also say open or closed (no report is merged into
    a closed case); case.personal-data-erased takes the ids of who reported it (nobody follows it on /my/ now)."""
    wanted = [(m, _case_uuid(m)) for m in messages if m.envelope.case_id]
    steps = await CaseSteps.read(uow.conn, [case_id for _, case_id in wanted], [_update_id(m) for m, _ in wanted])
    shown: list[tuple[uuid.UUID, list[str]]] = []
    for m, case_id in wanted:
        envelope = m.envelope
        if envelope.type in (CaseClosed.TYPE, CaseReopened.TYPE):
            steps.follow_lifecycle(case_id, closed=envelope.type == CaseClosed.TYPE)
        if envelope.type == CasePersonalDataErased.TYPE:
            steps.forget(case_id)
            continue
        case = steps.get(case_id)
        if case is None:
            continue  # not a case intake numbered (another street's prefix, a test's): nothing to tell its readers
        step = open311.step_of(envelope.type, envelope.data, case.public_state or None)
        if step is None:
            continue
        steps.record(case, _update_id(m), envelope.type, envelope.occurred_at, step)
        # Its photos become fetchable by Open311 clients: the update's, and an accepted report's own.
        media = [step.media_url] if step.media_url else []
        if envelope.type == CaseAccepted.TYPE and isinstance(envelope.data.get("media"), list):
            media += [str(url) for url in envelope.data["media"]]
        if media:
            shown.append((case_id, media))
    await steps.write(uow.conn)
    await media_sql.show_publicly(uow.conn, photos, shown)


def _update_id(m: Message[object]) -> str:
    """A comment's update_id is the comment's id: the one its poster got back (FixMyStreet then knows it)."""
    if m.envelope.type == "case.commented":
        return str(m.envelope.data.get("comment_id") or m.envelope.id)
    return m.envelope.id


def _case_uuid(m: Message[object]) -> uuid.UUID:
    try:
        return uuid.UUID(m.envelope.case_id or "")
    except ValueError:
        raise InvalidMessage(f"case_id {m.envelope.case_id!r} is not one intake gave out") from None


# ---- wangge.replies -----------------------------------------------------------------------------------------------

async def tell_replies(messages: list[Message[ReplyIssued]], uow: UnitOfWork) -> None:
    """Replies to residents (reply.issued): an update of each request in servicerequestupdates.

    One update per reply: the reporter, each follower (and each integrator's webhook, and an operator's resend) get a
    copy of the same reply, which names the case event it answers (`event_id`): its update_id is derived from the
    case, that event and the words, so copies and redeliveries make one update, and the same words told again at
    another step (a second progress SMS after a rework) make another. A reply issued before notify named the event
    has the key of its time (the case and the words), so one read again is not doubled.

    Replies issued before intake started telling them (open311_reply_horizon, migration 008) are skipped without a
    write: the reader's group is new on a deployment that ran before it and reads a year of the topic."""
    since = await uow.conn.fetchrow("SELECT since FROM open311_reply_horizon")
    horizon = since["since"] if since is not None else None
    wanted = []
    for m in messages:
        if not m.envelope.case_id or (horizon is not None and m.envelope.occurred_at < horizon):
            continue
        case_id = _case_uuid(m)
        data = m.envelope.data
        wanted.append((m, case_id, open311.reply_update_id(case_id, data.get("event_id"), data.get("kind"),
                                                           data.get("text"))))
    if not wanted:
        return
    steps = await CaseSteps.read(uow.conn, [case_id for _, case_id, _ in wanted], [u for _, _, u in wanted])
    for m, case_id, update_id in wanted:
        # Public once taken as a case (or rejected): intake's own state says so at once, even before the case event
        # (on the other topic) has given the request its first public step. A held report's replies are not public.
        case = steps.get(case_id)
        data = m.envelope.data
        step = open311.reply_step(data.get("kind"), data.get("state"), data.get("text"),
                                  case.reply_state if case is not None else None)
        if step is None or case is None or steps.has_update(update_id):
            continue  # not a public reply, or another copy of one told already (the updated time stays too)
        steps.record(case, update_id, m.envelope.type, m.envelope.occurred_at, step)
    await steps.write(uow.conn)


# ---- what leaves intake about a reporter ---------------------------------------------------------------------------

def public_photos(settings: Settings) -> open311.PublicPhotos:
    """How Open311 answers name a stored photo: its public thumbnail on the front door (keyed by the residents' key)."""
    return open311.PublicPhotos(settings.resident_secret(), settings.public_url)


def masked_reporter(reporter: Reporter | None) -> Reporter | None:
    """The reporter as wangge.cases and intake's own table carry it: 李** and 139****1001, so views and
    statistics can tell a resident reported it without holding who."""
    if reporter is None:
        return None
    return Reporter(name=mask_name(reporter.name), phone=mask_phone_number(reporter.phone),
                    email=mask_email(reporter.email))


def on_the_spot(report: ReportSubmitted) -> OnTheSpot | None:
    """自行处置 as the case events carry it: the coordinator's words masked like every text leaving intake."""
    spot = report.resolved_on_the_spot
    if spot is None:
        return None
    return OnTheSpot(result=mask_personal(spot.result.strip()), media=[str(m) for m in spot.media])


def contact_of(report: ReportSubmitted) -> Reporter | None:
    """The resident to answer, if the report gave a phone or an e-mail (a name alone answers no one: it is not
    passed on)."""
    if report.reporter is None:
        return None
    phone, email = (report.reporter.phone or "").strip(), (report.reporter.email or "").strip()
    if not phone and not email:
        return None
    name = (report.reporter.name or "").strip() or None
    return Reporter(name=name, phone=phone or None, email=email or None)


def masked_text(text: str | None) -> str | None:
    """Free text leaving intake (an address someone typed a number into): phone numbers masked."""
    return mask_personal(text) if text else text


_masked = masked_text

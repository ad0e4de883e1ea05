"""Intake's handlers: a submitted report becomes a numbered case, once, with its events in the outbox;
the command center classifies, locates, rejects or merges the reports intake had to hold."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.intake.adapters import media as media_sql
from services.intake.adapters import repository
from services.intake.adapters.case_numbers import CaseNumbers
from services.intake.adapters.repository import CaseRow, StoredCase
from services.intake.domain import held, open311
from services.intake.domain.assessment import Assessed, Locator, Rejected, assess
from services.intake.domain.case_numbers import format_case_no
from services.intake.domain.held import HeldCase, UnknownCase
from shared.auth import is_signed, update_signer
from shared.clock import now
from shared.consumer import current_record
from shared.contracts import Envelope, InvalidMessage, parse_event
from shared.contracts.cases import (CaseAccepted, CaseClassified, CaseClosed, CaseLocated, CaseMerged,
                                    CasePersonalDataErased, CaseRejected, CaseReopened, CaseReported)
from shared.contracts.common import Location, OnTheSpot, Reporter
from shared.contracts.contacts import ContactRecorded
from shared.contracts.reports import ReportSubmitted
from shared.personal_data import mask_email, mask_name, mask_personal, mask_phone_number
from shared.residents import resident_ids_of
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from shared.signing import SIGNER_HEADER
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
class Intake:
    """The handlers and what they need: the runtime, the case numbers and the street's geography, unit grids
    and categories."""

    runtime: ServiceRuntime
    numbers: CaseNumbers
    locator: Locator
    categories: set[str]
    unit_grids: frozenset[str] = frozenset()

    async def submit(self, report: ReportSubmitted, *, via: str, client: str | None) -> tuple[StoredCase, bool]:
        """Make a case of a report sent over HTTP, or return the case this client already made of the same
        (source, external_id).

        The idempotency key is scoped to the client (repository.find_by_sender): another client using the
        same external_id gets a case of its own, never the first client's case back.
        Returns (case, created). Raises ReportRejected when the report cannot be a case.
        """
        outcome = self._assess(report)
        received = now()
        # Taken before the unit of work holds a connection: a block's reservation needs one of its own.
        sequence = await self.numbers.take(received.date())
        used = False
        try:
            async with self.runtime.uow() as uow:
                result = await self._store(report, outcome, uow, via=via, client=client,
                                           numbered=(received, sequence))
                await uow.commit()
                used = result[1]
                return result
        except asyncpg.UniqueViolationError:
            # The same report arrived twice at the same moment (two instances, or HTTP and Kafka):
            # the other transaction won, and its case is the one.
            async with self.runtime.uow() as uow:
                existing = await repository.find_by_sender(uow.conn, report.source, report.external_id,
                                                           via=via, client=client)
            if existing is None:
                raise
            return existing, False
        finally:
            if not used:
                self.numbers.give_back(received.date(), sequence)

    def _assess(self, report: ReportSubmitted) -> Assessed:
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

    async def _store(self, report: ReportSubmitted, outcome: Assessed, uow: UnitOfWork, *, via: str,
                     client: str | None, event_id: str | None = None,
                     numbered: tuple[datetime, int] | None = None) -> tuple[StoredCase, bool]:
        """Store the report as a new case (received at, with the day's number `numbered`, or now with the next
        number), or return the case already made of it."""
        if event_id is not None:
            # Recorded with the effect; a replayed event finds its case just below.
            await uow.claim(REPORTS_CONSUMER, event_id)
        existing = await repository.find_by_sender(uow.conn, report.source, report.external_id, via=via,
                                                   client=client)
        if existing is not None:
            return existing, False
        if numbered is None:
            received = now()
            numbered = (received, await self.numbers.take(received.date()))
        received, sequence = numbered
        case_id = str(uuid.uuid4())
        case_no = format_case_no(received.date(), sequence)
        state = "accepted" if outcome.accepted else "reported"
        # 自行处置 is the coordinator's own work: no resident is answered for it (no contact, no SMS).
        spot = on_the_spot(report)
        masked = masked_reporter(report.reporter) if spot is None else None
        await repository.insert_report(uow.conn, {
            "case_id": uuid.UUID(case_id),
            "case_no": case_no,
            "source": report.source,
            "external_id": report.external_id,
            "category": report.category,
            "description": report.description,  # the original; what leaves intake is masked
            "lon": outcome.location.lon if outcome.location else None,
            "lat": outcome.location.lat if outcome.location else None,
            "address": outcome.address,
            "unit_grid": outcome.unit_grid,
            # Masked, like on wangge.cases: the contact in clear goes to notify alone, which erases it in time.
            "reporter": masked.model_dump() if masked else None,
            "coordinator": report.coordinator.model_dump() if report.coordinator else None,
            "media": [str(m) for m in report.media],
            "observed_at": report.observed_at,
            "received_at": received,
            "received_via": via,
            "client": client,
            "state": state,
            "hold_reason": outcome.hold_reason,
            # Who may follow and comment on it from /my/: the opaque ids of the mobile and e-mail it gave (not
            # the phone or the address: those go to notify alone). None for 自行处置: no resident is answered.
            "resident_keys": resident_ids_of(self.runtime.settings.resident_secret(),
                                             phone=report.reporter.phone, email=report.reporter.email)
            if spot is None and report.reporter is not None else [],
        })
        topic = self.runtime.topics.cases
        description = mask_personal(report.description)
        reported = CaseReported(
            case_no=case_no,
            source=report.source,
            external_id=report.external_id,
            category=report.category,
            description=description,
            location=report.location,
            address=_masked(report.address),
            reporter=masked,
            coordinator=report.coordinator,
            media=[str(m) for m in report.media],
            observed_at=report.observed_at,
            unit_grid=outcome.unit_grid,
            resolved_on_the_spot=spot,
        )
        uow.emit(topic, reported.envelope(source=SOURCE, case_id=case_id, occurred_at=received))
        contact = contact_of(report) if spot is None else None
        if contact is not None:
            # Before case.accepted in this transaction, though on another topic: notify copes with either order.
            uow.emit(self.runtime.topics.contacts, ContactRecorded(case_no=case_no, name=contact.name,
                                                                   phone=contact.phone or "", email=contact.email)
                     .envelope(source=SOURCE, case_id=case_id, occurred_at=received))
        if outcome.accepted:
            accepted = CaseAccepted(
                case_no=case_no,
                category=outcome.category,
                unit_grid=outcome.unit_grid,
                description=description,
                location=outcome.location,
                address=_masked(outcome.address),
                media=[str(m) for m in report.media],
                resolved_on_the_spot=spot,
            )
            uow.emit(topic, accepted.envelope(source=SOURCE, case_id=case_id, occurred_at=received))
        return StoredCase(case_id, case_no, state, outcome.unit_grid, report.category, outcome.hold_reason), True

    async def on_case_event(self, envelope: Envelope, uow: UnitOfWork) -> None:
        """A public step of a case on wangge.cases (open311.UPDATE_TYPES): kept for Open311's servicerequestupdates,
        the request's updated_datetime moved; case.closed / case.reopened also say open or closed, and no report
        is merged into a closed case."""
        if not envelope.case_id or not await uow.claim(CASES_CONSUMER, envelope.id):
            return
        try:
            case_id = uuid.UUID(envelope.case_id)
        except ValueError:
            raise InvalidMessage(f"case_id {envelope.case_id!r} is not one intake gave out") from None
        if envelope.type in (CaseClosed.TYPE, CaseReopened.TYPE):
            await repository.follow_lifecycle(uow.conn, envelope.case_id, closed=envelope.type == CaseClosed.TYPE)
        if envelope.type == CasePersonalDataErased.TYPE:
            # notify erased the residents' data: the ids of who reported it go too (nobody follows it on /my/ now).
            await repository.forget_residents(uow.conn, case_id)
            return
        current = await repository.public_state(uow.conn, case_id)
        if current is None:
            return  # not a case intake numbered (another street's prefix, a test's): nothing to tell its readers
        step = open311.step_of(envelope.type, envelope.data, current or None)
        if step is not None:
            # A comment's update_id is the comment's id: the one its poster got back (FixMyStreet then knows it).
            update_id = str(envelope.data.get("comment_id") or envelope.id) if envelope.type == "case.commented" \
                else envelope.id
            await repository.record_update(uow.conn, case_id, update_id, envelope.type, envelope.occurred_at, step)
            # Its photos become fetchable by Open311 clients: the update's, and an accepted report's own.
            shown = [step.media_url] if step.media_url else []
            if envelope.type == CaseAccepted.TYPE and isinstance(envelope.data.get("media"), list):
                shown += [str(url) for url in envelope.data["media"]]
            await media_sql.show_publicly(uow.conn, public_photos(self.runtime.settings), case_id, shown)

    async def on_reply(self, envelope: Envelope, uow: UnitOfWork) -> None:
        """A reply to a resident (reply.issued on wangge.replies): an update of the request in servicerequestupdates.

        One update per reply: the reporter, each follower (and each integrator's webhook, and an operator's resend)
        get a copy of the same reply, which names the case event it answers (`event_id`): its update_id is derived
        from the case, that event and the words, so copies and redeliveries make one update, and the same words told
        again at another step (a second progress SMS after a rework) make another. A reply issued before notify
        named the event has the key of its time (the case and the words), so one read again is not doubled.

        Replies issued before intake started telling them (open311_reply_horizon, migration 008) are skipped without
        a write: the reader's group is new on a deployment that ran before it and reads a year of the topic."""
        if not envelope.case_id or not await repository.reply_after_horizon(uow.conn, envelope.occurred_at):
            return
        if not await uow.claim(REPLIES_CONSUMER, envelope.id):
            return
        try:
            case_id = uuid.UUID(envelope.case_id)
        except ValueError:
            raise InvalidMessage(f"case_id {envelope.case_id!r} is not one intake gave out") from None
        # Public once taken as a case (or rejected): intake's own state says so at once, even before the case event
        # (on the other topic) has given the request its first public step. A held report's replies are not public.
        current = await repository.reply_state(uow.conn, case_id)
        data = envelope.data
        step = open311.reply_step(data.get("kind"), data.get("state"), data.get("text"), current)
        if step is None:
            return
        update_id = open311.reply_update_id(case_id, data.get("event_id"), data.get("kind"), data.get("text"))
        if await repository.has_update(uow.conn, update_id):
            return  # another copy of this reply: the request's updated_datetime stays too
        await repository.record_update(uow.conn, case_id, update_id, envelope.type, envelope.occurred_at, step)

    async def on_report_message(self, envelope: Envelope, uow: UnitOfWork) -> None:
        """A message on wangge.reports: make its case, or reject it with the reason."""
        if envelope.type != ReportSubmitted.TYPE:
            raise InvalidMessage(f"wangge.reports carries {ReportSubmitted.TYPE} only, not {envelope.type!r}")
        report = parse_event(envelope)
        assert isinstance(report, ReportSubmitted)
        try:
            outcome = self._assess(report)
        except ReportRejected as exc:
            raise InvalidMessage(str(exc)) from None
        missing = await media_sql.not_stored(uow.conn, report.media)
        if missing:
            raise InvalidMessage(media_sql.not_stored_reason(missing[0]))
        sender = await self._report_sender(uow, envelope)
        # A unique violation here (another instance took the same report) is retried by the
        # consumer in a fresh savepoint, and then finds that case.
        await self._store(report, outcome, uow, via="kafka", client=sender, event_id=envelope.id)

    async def _report_sender(self, uow: UnitOfWork, envelope: Envelope) -> str:
        """Who sent a report on Kafka, as its de-duplication scope: the signing key of the terminal gateway's or
        the bridge's credential that signed it (shared/auth.py), never the envelope's `source`, which any
        producer writes — so a stranger publishing first with a predictable external_id makes a case of its own
        and never drops the real report. Unsigned reports are refused where signatures are required (production);
        elsewhere they share a scope of their own, which no signed sender's can be."""
        settings = self.runtime.settings
        required = settings.profile == "production" or settings.require_signed_updates
        record = current_record()
        headers = {key: value for key, value in (record.headers or ())} if record is not None else {}
        if not is_signed(headers):
            if required:
                raise InvalidMessage("report not accepted: not signed: a terminal gateway or the hotline bridge signs "
                                     "its reports with its credential's key (headers wangge-signer, wangge-ed25519)")
            return f"unsigned:{envelope.source}"
        signer = await update_signer(uow.conn, headers, record.value if record is not None else b"",
                                     production=settings.profile == "production",
                                     topic=record.topic, key=record.key)
        if isinstance(signer, str):
            raise InvalidMessage(f"report not accepted: {signer}")
        if signer.role not in REPORTING_ROLES:
            raise InvalidMessage(f"report not accepted: signed by {signer.actor}; reports come from "
                                 f"{' or '.join(REPORTING_ROLES)} credentials")
        return f"key:{headers[SIGNER_HEADER].decode('ascii')}"

    # ---- the command center's hands on held reports --------------------------------------------
    # Each command locks the case's row (SELECT … FOR UPDATE), so two operators cannot both act on
    # it: the second waits, then finds the state the first one left. The row change and the events
    # it emits are one unit of work. Refusals raise held.Refused (UnknownCase, WrongState, Unacceptable).

    async def classify(self, case_no: str, category: str, *, by: str) -> StoredCase:
        """分类: a held report gets its category; accepted if it also has a unit grid."""
        async with self.runtime.uow() as uow:
            row = await self._lock(uow, case_no)
            case = held.classify(_held(row), category, self.categories)
            at = now()
            uow.emit(self.runtime.topics.cases, CaseClassified(case_no=case_no, category=category, by=by)
                     .envelope(source=SOURCE, case_id=row.case_id, occurred_at=at))
            stored = await self._settle(uow, row, case, by=by, at=at)
            await uow.commit()
        log.info("case %s classified %s by %s: %s", case_no, category, by, stored.state)
        return stored

    async def locate(self, case_no: str, *, by: str, location: Location | None = None,
                     unit_grid: str | None = None) -> StoredCase:
        """定位: a held report gets its place, a point (its unit grid follows) or a unit grid; accepted if it
        also has a category."""
        if (location is None) == (unit_grid is None):
            raise held.Unacceptable("give exactly one of location or unit_grid (位置与单元网格二选一)")
        async with self.runtime.uow() as uow:
            row = await self._lock(uow, case_no)
            if location is not None:
                case = held.locate_at(_held(row), location, self.locator)
            else:
                assert unit_grid is not None
                case = held.locate_in(_held(row), unit_grid, self.unit_grids, self.locator)
            at = now()
            assert case.unit_grid is not None
            located = CaseLocated(case_no=case_no, unit_grid=case.unit_grid, location=case.location,
                                  address=_masked(case.address), by=by)
            uow.emit(self.runtime.topics.cases, located.envelope(source=SOURCE, case_id=row.case_id, occurred_at=at))
            stored = await self._settle(uow, row, case, by=by, at=at)
            await uow.commit()
        log.info("case %s located in %s by %s: %s", case_no, case.unit_grid, by, stored.state)
        return stored

    async def reject(self, case_no: str, reason: str, *, by: str) -> StoredCase:
        """不予受理: not a case; the reporter is told the reason."""
        async with self.runtime.uow() as uow:
            row = await self._lock(uow, case_no)
            held.ensure_may(_held(row), "reject")
            at = now()
            await repository.update_case(uow.conn, row.case_id, {
                "state": "rejected", "hold_reason": None, "reject_reason": reason, "acted_by": by, "acted_at": at})
            # An operator's free text: a number written into it is masked on its way out (kept as written here).
            uow.emit(self.runtime.topics.cases, CaseRejected(case_no=case_no, reason=mask_personal(reason), by=by)
                     .envelope(source=SOURCE, case_id=row.case_id, occurred_at=at))
            await uow.commit()
        log.info("case %s rejected by %s", case_no, by)
        return StoredCase(row.case_id, case_no, "rejected", row.unit_grid, row.category, None)

    async def merge(self, case_no: str, into: str, *, by: str) -> StoredCase:
        """合并: a duplicate follows the open case `into`."""
        async with self.runtime.uow() as uow:
            rows = await repository.lock_cases(uow.conn, case_no, into)
            row = rows.get(case_no)
            if row is None:
                raise UnknownCase(f"no case {case_no} (案件不存在)")
            target = rows.get(into)
            held.ensure_mergeable(_held(row), _held(target) if target else None, into)
            assert target is not None
            at = now()
            await repository.update_case(uow.conn, row.case_id, {
                "state": "merged", "hold_reason": None, "merged_into": uuid.UUID(target.case_id),
                "acted_by": by, "acted_at": at})
            merged = CaseMerged(case_no=case_no, into_case_id=target.case_id, into_case_no=target.case_no, by=by)
            uow.emit(self.runtime.topics.cases, merged.envelope(source=SOURCE, case_id=row.case_id, occurred_at=at))
            await uow.commit()
        log.info("case %s merged into %s by %s", case_no, into, by)
        return StoredCase(row.case_id, case_no, "merged", row.unit_grid, row.category, None)

    async def _lock(self, uow: UnitOfWork, case_no: str) -> CaseRow:
        row = (await repository.lock_cases(uow.conn, case_no)).get(case_no)
        if row is None:
            raise UnknownCase(f"no case {case_no} (案件不存在)")
        return row

    async def _settle(self, uow: UnitOfWork, row: CaseRow, case: HeldCase, *, by: str, at: datetime) -> StoredCase:
        """Store the classified or located case; if it is complete now, accept it (立案) like a complete report."""
        complete = held.is_complete(case)
        state = "accepted" if complete else held.HELD
        reason = held.hold_reason(case.category, case.unit_grid)
        await repository.update_case(uow.conn, row.case_id, {
            "category": case.category, "unit_grid": case.unit_grid,
            "lon": case.location.lon if case.location else None, "lat": case.location.lat if case.location else None,
            "state": state, "hold_reason": reason, "acted_by": by, "acted_at": at})
        if complete:
            assert case.category is not None and case.unit_grid is not None
            accepted = CaseAccepted(case_no=row.case_no, category=case.category, unit_grid=case.unit_grid,
                                    description=mask_personal(row.description), location=case.location,
                                    address=_masked(case.address),
                                    media=list(row.media))
            uow.emit(self.runtime.topics.cases, accepted.envelope(source=SOURCE, case_id=row.case_id, occurred_at=at))
        return StoredCase(row.case_id, row.case_no, state, case.unit_grid, case.category, reason)


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


def _masked(text: str | None) -> str | None:
    """Free text leaving intake (an address someone typed a number into): phone numbers masked."""
    return mask_personal(text) if text else text


def _held(row: CaseRow) -> HeldCase:
    location = Location(lon=row.lon, lat=row.lat) if row.lon is not None and row.lat is not None else None
    return HeldCase(row.case_no, row.state, row.category, row.unit_grid, location, row.address)

"""Intake's handlers: a submitted report becomes a numbered case, once, with its events in the outbox."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from services.intake.adapters import repository
from services.intake.adapters.repository import StoredCase
from services.intake.domain.assessment import Assessed, Locator, Rejected, assess
from services.intake.domain.case_numbers import format_case_no
from shared.clock import now
from shared.contracts import Envelope, InvalidMessage, parse_event
from shared.contracts.cases import CaseAccepted, CaseReported
from shared.contracts.reports import ReportSubmitted
from shared.runtime import ServiceRuntime
from shared.uow import UnitOfWork

SOURCE = "intake"
REPORTS_CONSUMER = "intake:reports"


class ReportRejected(ValueError):
    """The report cannot become a case; the reason goes back to the sender."""


@dataclass(frozen=True)
class Intake:
    """The handlers and what they need: the runtime and the street's geography and categories."""

    runtime: ServiceRuntime
    locator: Locator
    categories: set[str]

    async def submit(self, report: ReportSubmitted, *, via: str, client: str | None) -> tuple[StoredCase, bool]:
        """Make a case of a report sent over HTTP, or return the case the same (source, external_id) made.

        Returns (case, created). Raises ReportRejected when the report cannot be a case.
        """
        outcome = self._assess(report)
        try:
            async with self.runtime.uow() as uow:
                result = await self._store(report, outcome, uow, via=via, client=client)
                await uow.commit()
                return result
        except asyncpg.UniqueViolationError:
            # The same report arrived twice at the same moment (two instances, or HTTP and Kafka):
            # the other transaction won, and its case is the one.
            async with self.runtime.uow() as uow:
                existing = await repository.find_by_source(uow.conn, report.source, report.external_id)
            if existing is None:
                raise
            return existing, False

    def _assess(self, report: ReportSubmitted) -> Assessed:
        outcome = assess(report, self.locator, self.categories)
        if isinstance(outcome, Rejected):
            raise ReportRejected(outcome.reason)
        return outcome

    async def _store(self, report: ReportSubmitted, outcome: Assessed, uow: UnitOfWork, *, via: str,
                     client: str | None, event_id: str | None = None) -> tuple[StoredCase, bool]:
        if event_id is not None:
            # Recorded with the effect; a replayed event finds its case just below.
            await uow.claim(REPORTS_CONSUMER, event_id)
        existing = await repository.find_by_source(uow.conn, report.source, report.external_id)
        if existing is not None:
            return existing, False
        received = now()
        case_id = str(uuid.uuid4())
        case_no = format_case_no(received.date(), await repository.next_case_no_sequence(uow.conn, received.date()))
        state = "accepted" if outcome.accepted else "reported"
        await repository.insert_report(uow.conn, {
            "case_id": uuid.UUID(case_id),
            "case_no": case_no,
            "source": report.source,
            "external_id": report.external_id,
            "category": report.category,
            "description": report.description,
            "lon": outcome.location.lon if outcome.location else None,
            "lat": outcome.location.lat if outcome.location else None,
            "address": outcome.address,
            "unit_grid": outcome.unit_grid,
            "reporter": report.reporter.model_dump() if report.reporter else None,
            "coordinator": report.coordinator.model_dump() if report.coordinator else None,
            "media": [str(m) for m in report.media],
            "observed_at": report.observed_at,
            "received_at": received,
            "received_via": via,
            "client": client,
            "state": state,
            "hold_reason": outcome.hold_reason,
        })
        topic = self.runtime.topics.cases
        reported = CaseReported(
            case_no=case_no,
            source=report.source,
            external_id=report.external_id,
            category=report.category,
            description=report.description,
            location=report.location,
            address=report.address,
            reporter=report.reporter,
            coordinator=report.coordinator,
            media=[str(m) for m in report.media],
            observed_at=report.observed_at,
            unit_grid=outcome.unit_grid,
        )
        uow.emit(topic, reported.envelope(source=SOURCE, case_id=case_id, occurred_at=received))
        if outcome.accepted:
            accepted = CaseAccepted(
                case_no=case_no,
                category=outcome.category,
                unit_grid=outcome.unit_grid,
                description=report.description,
                location=outcome.location,
                address=outcome.address,
                media=[str(m) for m in report.media],
            )
            uow.emit(topic, accepted.envelope(source=SOURCE, case_id=case_id, occurred_at=received))
        return StoredCase(case_id, case_no, state, outcome.unit_grid, outcome.hold_reason), True

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
        # A unique violation here (another instance took the same report) is retried by the
        # consumer in a fresh savepoint, and then finds that case.
        await self._store(report, outcome, uow, via="kafka", client=envelope.source, event_id=envelope.id)

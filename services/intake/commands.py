"""Intake's commands, each one unit of work committed: a report sent over HTTP (POST /api/v1/reports, Open311's POST
requests) is a SubmitReport on the reports' bus (the same `store_reports` as the reports read from Kafka); the command
center classifies, locates, rejects or merges the reports intake had to hold."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from services.intake.adapters import repository
from services.intake.adapters.repository import CaseRow, StoredCase
from services.intake.domain import held
from services.intake.domain.held import HeldCase, UnknownCase
from services.intake.handlers import SOURCE, Reception, ReportRejected, SubmitReport, masked_text as _masked
from shared.contracts.cases import CaseAccepted, CaseClassified, CaseLocated, CaseMerged, CaseRejected
from shared.contracts.common import Location
from shared.contracts.reports import ReportSubmitted
from shared.messagebus import MessageBus
from shared.personal_data import mask_personal
from shared.runtime import ServiceRuntime
from shared.uow import UnitOfWork

__all__ = ["Intake", "ReportRejected"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Intake:
    """The commands and what they need: the runtime (their units of work), the reception (topics, numbers, the
    street, the clock) and the street's unit grids."""

    runtime: ServiceRuntime
    reception: Reception
    bus: MessageBus  # the reports' bus: HTTP reports are its SubmitReport commands
    unit_grids: frozenset[str] = frozenset()

    @property
    def categories(self) -> frozenset[str]:
        return self.reception.categories

    @property
    def locator(self):  # type: ignore[no-untyped-def]
        return self.reception.locator

    async def submit(self, report: ReportSubmitted, *, via: str, client: str | None) -> tuple[StoredCase, bool]:
        """Make a case of a report sent over HTTP, or return the case this client already made of the same
        (source, external_id).

        The idempotency key is scoped to the client (report_store.found_by_senders): another client using the
        same external_id gets a case of its own, never the first client's case back.
        Returns (case, created). Raises ReportRejected when the report cannot be a case.
        """
        outcome = self.reception.assess(report)
        received = self.reception.clock.now()
        sequence = await self.reception.numbers.take(received.date())  # see SubmitReport: before the unit of work
        used = False
        try:
            case, created = await self.bus.handle(SubmitReport(report, outcome, via, client, received, sequence))
            used = created
            return case, created
        finally:
            if not used:
                self.reception.numbers.give_back(received.date(), sequence)

    # ---- the command center's hands on held reports --------------------------------------------
    # Each command locks the case's row (SELECT … FOR UPDATE), so two operators cannot both act on
    # it: the second waits, then finds the state the first one left. The row change and the events
    # it emits are one unit of work. Refusals raise held.Refused (UnknownCase, WrongState, Unacceptable).

    async def classify(self, case_no: str, category: str, *, by: str) -> StoredCase:
        """分类: a held report gets its category; accepted if it also has a unit grid."""
        async with self.runtime.uow() as uow:
            row = await self._lock(uow, case_no)
            case = held.classify(_held(row), category, self.categories)
            at = self.reception.clock.now()
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
            at = self.reception.clock.now()
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
            at = self.reception.clock.now()
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
            at = self.reception.clock.now()
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




def _held(row: CaseRow) -> HeldCase:
    location = Location(lon=row.lon, lat=row.lat) if row.lon is not None and row.lat is not None else None
    return HeldCase(row.case_no, row.state, row.category, row.unit_grid, location, row.address)

"""The one place intake is wired: runtime, street geography, its three message buses (reports, case steps, replies)
and HTTP routes (reports, held cases, Open311)."""
from __future__ import annotations

import asyncio
from pathlib import Path

from services.intake.adapters.case_numbers import CaseNumbers
from services.intake.domain import open311
from services.intake.entrypoints.cases import build_cases_router
from services.intake.entrypoints.http import build_router
from services.intake.entrypoints.media import DECODING_AT_ONCE, build_media_router
from services.intake.entrypoints.open311 import MAX_PHOTOS, build_open311_router
from services.intake.entrypoints.resident_comments import build_resident_comments_router
from services.intake.commands import Intake
from services.intake.handlers import (
    CASES_CONSUMER, REPLIES_CONSUMER, REPORTS_CONSUMER, Reception, SubmitReport, follow_cases, public_photos,
    submit_report, take_reports, tell_replies,
)
from shared.clock import Clock
from shared.contracts import registered_types
from shared.contracts.cases import CasePersonalDataErased
from shared.contracts.replies import ReplyIssued
from shared.contracts.reports import ReportSubmitted
from shared.http import create_app
from shared.messagebus import MessageBus, carrying_only
from shared.media import store_from_settings
from shared.runtime import Service, ServiceRuntime
from shared.settings import Settings
from shared.street import GridLocator, load_street

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: Settings, manage_runtime: bool = True, clock: Clock | None = None) -> Service:
    """The intake service, ready to start (a test may hand it a clock of its own)."""
    runtime = ServiceRuntime("intake", settings, MIGRATIONS)
    street = load_street(settings.street_dir)
    reception = Reception.of(settings, runtime.topics, CaseNumbers(lambda: runtime.pool), GridLocator(street),
                             frozenset(street.categories), clock or Clock())
    # wangge.reports: reports become cases, a partition's batch at once. The topic carries reports only: any other
    # type is set aside with the reason (so every type reaches this bus, not only its own). HTTP reports are its
    # commands.
    reports = MessageBus(
        consumer=REPORTS_CONSUMER,
        events=carrying_only("wangge.reports", {ReportSubmitted: [take_reports]}),
        commands={SubmitReport: submit_report},
        deps={"reception": reception},
        uow_factory=runtime.uow,
    )
    runtime.consume([runtime.topics.reports], reports)
    # The reporter's name and phone leave wangge.reports as soon as intake has committed the report (DESIGN
    # "Personal data"): intake is the topic's one reader.
    runtime.trim_taken(runtime.topics.reports)
    models = registered_types()
    # The public steps of its cases: Open311's servicerequestupdates and open/closed (no merge into a closed case).
    # And the erasure of its residents' data (who may follow it on /my/ goes with it).
    cases = MessageBus(
        consumer=CASES_CONSUMER,
        events={models[t]: [follow_cases] for t in sorted(open311.UPDATE_TYPES | {CasePersonalDataErased.TYPE})},
        deps={"photos": public_photos(settings)},
    )
    runtime.consume([runtime.topics.cases], cases, group_suffix="-cases")
    # What notify told the residents: updates in Open311's servicerequestupdates too.
    replies = MessageBus(consumer=REPLIES_CONSUMER, events={ReplyIssued: [tell_replies]}, deps={})
    runtime.consume([runtime.topics.replies], replies, group_suffix="-replies")
    intake = Intake(runtime, reception, reports, frozenset(grid.code for grid in street.level("unit")))
    app = create_app(
        runtime,
        title="wangge intake",
        description=f"受理: reports from terminals, the 12345 hotline and the web become numbered cases ({street.name}).",
        manage_runtime=manage_runtime,
        # A photo is larger than a report: its own limit (and the multipart framing around it).
        # Open311's posts may carry photos too (multipart `media`).
        body_limits={path: (settings.media_max_bytes * (1 if path == "/api/v1/media" else MAX_PHOTOS) + 64 * 1024,
                            f"the photo is larger than {settings.media_max_bytes // (1024 * 1024)} MB "
                            f"(照片不能超过{settings.media_max_bytes // (1024 * 1024)}MB)")
                     for path in ("/api/v1/media", *(f"/open311/v2/{what}.{fmt}" for what in (
                         "requests", "servicerequestupdates") for fmt in ("json", "xml")))},
    )
    store = store_from_settings(settings)
    app.state.intake = intake  # for tests that reach the commands directly
    app.state.buses = {"reports": reports, "cases": cases, "replies": replies}  # for tests: batches handed in directly
    # Photos decoded at once in this process, whichever path took them (POST /api/v1/media, Open311's `media`).
    decoding = asyncio.Semaphore(DECODING_AT_ONCE)
    app.include_router(build_router(runtime, intake))
    app.include_router(build_cases_router(intake))
    app.include_router(build_resident_comments_router(runtime, reception.clock))  # 补充说明 from the resident page (/my/)
    app.include_router(build_media_router(runtime, store, decoding))
    app.include_router(build_open311_router(
        runtime, intake, store, decoding,
        {c.code: open311.Service(c.code, c.name, c.group, c.urgency) for c in street.categories.values()},
        reception.clock, jurisdiction=street.code))
    return Service(runtime, app)

"""Wires intake: runtime, street geography, handlers, consumer and HTTP routes (reports, held cases)."""
from __future__ import annotations

import asyncio
from pathlib import Path

from services.intake.adapters.case_numbers import CaseNumbers
from services.intake.domain import open311
from services.intake.entrypoints.cases import router as cases_router
from services.intake.entrypoints.http import router
from services.intake.entrypoints.media import DECODING_AT_ONCE, build_media_router
from services.intake.entrypoints.open311 import MAX_PHOTOS, build_open311_router
from services.intake.entrypoints.resident_comments import router as resident_comments_router
from services.intake.handlers import Intake
from shared.contracts.cases import CasePersonalDataErased
from shared.contracts.replies import ReplyIssued
from shared.http import create_app
from shared.media import store_from_settings
from shared.runtime import Service, ServiceRuntime
from shared.settings import Settings
from shared.street import GridLocator, load_street

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: Settings, manage_runtime: bool = True) -> Service:
    """The intake service, ready to start."""
    runtime = ServiceRuntime("intake", settings, MIGRATIONS)
    street = load_street(settings.street_dir)
    intake = Intake(runtime, CaseNumbers(lambda: runtime.pool), GridLocator(street), set(street.categories),
                    frozenset(grid.code for grid in street.level("unit")))
    runtime.consume([runtime.topics.reports], intake.on_report_message)
    # The public steps of its cases: Open311's servicerequestupdates and open/closed (no merge into a closed case).
    # And the erasure of its residents' data (who may follow it on /my/ goes with it).
    runtime.consume([runtime.topics.cases], intake.on_case_event, group_suffix="-cases",
                    types=set(open311.UPDATE_TYPES) | {CasePersonalDataErased.TYPE})
    # What notify told the residents: updates in Open311's servicerequestupdates too.
    runtime.consume([runtime.topics.replies], intake.on_reply, group_suffix="-replies", types={ReplyIssued.TYPE})
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
    app.state.intake = intake
    app.state.media_store = store
    # Photos decoded at once in this process, whichever path took them (POST /api/v1/media, Open311's `media`).
    app.state.decoding = asyncio.Semaphore(DECODING_AT_ONCE)
    app.include_router(router)
    app.include_router(cases_router)
    app.include_router(resident_comments_router)  # 补充说明 from the resident page (/my/)
    app.include_router(build_media_router(runtime, store, app.state.decoding))
    app.include_router(build_open311_router(
        {c.code: open311.Service(c.code, c.name, c.group, c.urgency) for c in street.categories.values()},
        jurisdiction=street.code))
    return Service(runtime, app)

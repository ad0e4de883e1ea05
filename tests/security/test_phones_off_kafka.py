"""Residents' phones off Kafka (issue 18, item 3), attacked on the real broker: after a few reports have gone
through intake and their contacts through notify, someone reading wangge.reports and wangge.contacts from the
beginning (a new consumer group, as anyone who reaches the broker or steals a reader's password would) finds none
of those residents' phone numbers."""
from __future__ import annotations

import asyncio

import pytest

from services.intake.bootstrap import build as build_intake
from tests.notify_running import Notify, notify  # noqa: F401 (the fixture)
from tests.integration.test_reports_trimmed import a_phone, from_the_beginning, kafka_report, produce
from tests.support import eventually

pytestmark = pytest.mark.integration

# A trim pass every second (services: WANGGE_TRIM_INTERVAL_SECONDS, 10 s by default).
TRIM_SECONDS = 1.0


@pytest.fixture
def isolated(isolated):
    return isolated.model_copy(update={"trim_interval_seconds": TRIM_SECONDS})


async def test_reading_the_personal_topics_from_the_beginning_finds_no_phone_of_a_taken_report(notify: Notify):
    settings, bootstrap = notify.settings, notify.settings.kafka_bootstrap
    topics = notify.service.runtime.topics
    intake = build_intake(settings, manage_runtime=False)
    await asyncio.wait_for(intake.runtime.start(), 60)
    try:
        await intake.runtime.wait_until_consuming()
        phones = [a_phone() for _ in range(4)]
        for phone in phones:
            report, external_id = kafka_report(phone)
            await produce(bootstrap, topics.reports, report, key=external_id)
        # Taken: intake made the cases, and notify holds every contact (intake handed them on wangge.contacts).
        await eventually(lambda: notify.service.runtime.pool.fetchval(
            "SELECT count(*) = $2 FROM contacts WHERE phone = ANY($1::text[])", phones, len(phones)), timeout=30)

        async def nothing_found() -> bool:
            seen = await from_the_beginning(bootstrap, topics.reports) + \
                await from_the_beginning(bootstrap, topics.contacts)
            return not any(phone.encode() in seen for phone in phones)
        # Within a few trim passes of being taken (a pass, plus the readers' commit every 0.2 s): gone from both.
        assert await eventually(nothing_found, timeout=10 * TRIM_SECONDS + 10)
    finally:
        await asyncio.wait_for(intake.runtime.stop(), 30)

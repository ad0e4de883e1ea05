"""Owners' photo links are scheme-checked (issue 18: "owners' photo links are not scheme-checked"; item 6: "photo
links checked"), attacked through supervision's HTTP door and the contract Kafka updates are read with.

A photo is /media/<id> as wangge stored it or an absolute http(s) URL: javascript:, data:, file:, a
protocol-relative or a relative path would be a link the work screen and the resident's page render. Refused with
the reason, nothing changes."""
from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from shared.contracts.tasks import TaskProgress, TaskResolved
from shared.topics import Topics, ensure_topics
from tests.conftest import drop_schemas
from tests.supervision_cases import http, open_case
from tests.supervision_cases import start
from tests.support import grant

pytestmark = pytest.mark.integration

HOSTILE = ["javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:image/svg+xml;base64,PHN2Zz4=", "file:///etc/passwd",
           "//evil.example/x.jpg", "../media/abc", "/api/v1/sessions", "ftp://evil.example/x.jpg"]


@pytest.mark.parametrize("link", HOSTILE)
def test_the_owners_update_contract_refuses_a_link_that_is_not_a_photo(link: str):
    for model, fields in ((TaskProgress, {"note": "进行中"}), (TaskResolved, {"result": "已处理"})):
        with pytest.raises(ValidationError):
            model(case_no="20261206-0001", owner="huanwei", media=[link], **fields)
    assert TaskResolved(case_no="20261206-0001", owner="huanwei", result="已处理",
                        media=["https://photos.example.cn/a.jpg"]).media


async def test_an_owner_posting_a_hostile_photo_link_is_refused_and_nothing_changes(make_settings):
    settings = make_settings()
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings.kafka_bootstrap, topics.fixed() + [topics.for_owner("huanwei")])
    service = await start(settings)
    pool = service.runtime.pool
    try:
        await grant(settings, service, token="owner-huanwei", name="环卫所", role="owner", owner_code="huanwei")
        case_id, case_no = await open_case(settings, pool)
        async with http(service, "owner-huanwei") as owner:
            answers = [await owner.post(f"/api/v1/tasks/{case_no}/updates",
                                        json={"type": "task.progress", "note": "处理中", "media": [link]})
                       for link in HOSTILE[:4]]
        for answer in answers:
            assert answer.status_code == 422, answer.text
            assert "photo" in answer.text or "照片" in answer.text, answer.text
        assert await pool.fetchval("SELECT state FROM cases WHERE case_id = $1", case_id) == "dispatched"
        assert not await pool.fetchval("SELECT count(*) FROM case_events WHERE case_id = $1 "
                                       "AND type = 'case.progress-reported'", case_id)
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)
        await drop_schemas(settings)

"""intake and personal data on the real broker and database: the contact goes to wangge.contacts alone,
wangge.cases carries the reporter and free text masked, and an external_id is scoped to its sender."""
from __future__ import annotations

import uuid

import pytest

from shared.contracts import Envelope
from tests.integration.test_intake_service import client, intake, report_body  # noqa: F401 (the fixture)
from tests.privacy import FULL_MOBILE
from tests.support import TopicReader, grant, publish

pytestmark = pytest.mark.integration

OTHER_TERMINAL = "test-terminal-2"


async def test_the_contact_goes_to_notify_s_topic_and_the_case_log_gets_it_masked(intake, isolated):
    topics = intake.runtime.topics
    body = report_body("SZT-P-1", description="垃圾箱破损，请回电139 1234 5678或座机0632-3311234",
                       reporter={"name": "李先生", "phone": "+86 139-0000-1001"})
    async with client(intake) as http, TopicReader(isolated.kafka_bootstrap, topics.cases) as cases, \
            TopicReader(isolated.kafka_bootstrap, topics.contacts) as contacts:
        response = await http.post("/api/v1/reports", json=body)
        assert response.status_code == 201, response.text
        case_id = response.json()["case_id"]
        contact = await contacts.wait_for(lambda m: m["case_id"] == case_id)
        reported = await cases.wait_for(lambda m: m["type"] == "case.reported" and m["case_id"] == case_id)
        accepted = await cases.wait_for(lambda m: m["type"] == "case.accepted" and m["case_id"] == case_id)
        # A report with no phone hands nothing to notify.
        silent = await http.post("/api/v1/reports", json=report_body("SZT-P-2", reporter={"name": "王女士", "phone": None}))
        silent_id = silent.json()["case_id"]
        await cases.wait_for(lambda m: m["type"] == "case.accepted" and m["case_id"] == silent_id)
        none = await contacts.all_within(1.5, lambda m: m["case_id"] == silent_id)

    assert contact["type"] == "contact.recorded" and contact["_key"] == case_id and contact["source"] == "intake"
    assert contact["data"] == {"case_no": response.json()["case_no"], "name": "李先生", "phone": "+86 139-0000-1001",
                               "email": None}
    assert reported["data"]["reporter"] == {"name": "李**", "phone": "139****1001", "email": None}
    masked = "垃圾箱破损，请回电139****5678或座机0632-****1234"
    assert reported["data"]["description"] == accepted["data"]["description"] == masked
    for event in (reported, accepted):
        assert not FULL_MOBILE.search(str(event)) and "李先生" not in str(event)
    assert none == []
    # intake keeps the description as written, and the reporter only masked (notify holds the contact).
    row = await intake.runtime.pool.fetchrow("SELECT description, reporter FROM reports WHERE case_id = $1",
                                             uuid.UUID(case_id))
    assert row["description"] == body["description"]
    assert "李先生" not in row["reporter"] and "0000" not in row["reporter"]


async def test_another_client_s_external_id_gets_a_case_of_its_own_not_the_first_client_s(intake, isolated):
    await grant(isolated, intake, token=OTHER_TERMINAL, name="网格员002终端", role="terminal",
                worker_id="W002", device_id="SZT-0002")
    async with client(intake) as first, client(intake) as second:
        second.headers["Authorization"] = f"Bearer {OTHER_TERMINAL}"
        mine = await first.post("/api/v1/reports", json=report_body("SZT-SAME-1"))
        theirs = await second.post("/api/v1/reports", json=report_body("SZT-SAME-1", description="另一处垃圾箱损坏"))
        again = await first.post("/api/v1/reports", json=report_body("SZT-SAME-1"))
        their_again = await second.post("/api/v1/reports", json=report_body("SZT-SAME-1"))
    assert mine.status_code == 201 and theirs.status_code == 201, theirs.text
    assert theirs.json()["case_id"] != mine.json()["case_id"] and theirs.json()["case_no"] != mine.json()["case_no"]
    assert theirs.json()["duplicate"] is False
    # Each sender's retry is still its own one case.
    assert again.status_code == 200 and again.json()["case_id"] == mine.json()["case_id"]
    assert their_again.status_code == 200 and their_again.json()["case_id"] == theirs.json()["case_id"]

    # On Kafka the envelope's source is the sender: two bridges, one external_id, two cases; a resend, one.
    topics = intake.runtime.topics
    body = report_body("12345-SAME", source="hotline", reporter={"name": "王女士", "phone": "13800005678"})
    async with TopicReader(isolated.kafka_bootstrap, topics.cases) as cases:
        for source in ("bridge-a", "bridge-b", "bridge-a"):
            await publish(isolated.kafka_bootstrap, topics.reports,
                          Envelope.new("report.submitted", 1, body, source=source), key="12345-SAME")
        await cases.wait_for(lambda m: m["type"] == "case.reported" and m["data"]["external_id"] == "12345-SAME")
        reported = await cases.all_within(
            2.5, lambda m: m["type"] == "case.reported" and m["data"]["external_id"] == "12345-SAME")
    assert len(reported) == 2 and len({m["case_id"] for m in reported}) == 2
    assert await intake.runtime.pool.fetchval("SELECT count(*) FROM reports WHERE external_id = 'SZT-SAME-1'") == 2

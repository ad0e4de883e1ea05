"""notify and personal data on the real broker and database: contacts on their own topic in either order
with the case events, replies that wait for them, and the erasure after the survey window."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from shared.clock import now
from shared.contracts import Envelope
from shared.contracts.cases import CaseReported
from shared.contracts.common import Reporter
from shared.contracts.contacts import ContactRecorded
from tests.notify_cases import Case, at_least, of_case
from tests.notify_running import Notify, notify  # noqa: F401 (the fixture)
from tests.privacy import FULL_MOBILE
from tests.support import TopicReader, eventually, publish

pytestmark = pytest.mark.integration

A_PHONE, B_PHONE, C_PHONE = "13900001001", "13900002002", "13900003003"


@pytest.fixture
def isolated(isolated):
    """The tests' own settings: erasure as soon as the survey window has closed, looked for every 0.2 s."""
    return isolated.model_copy(update={"erase_after_days": 0.0, "erasure_poll_seconds": 0.2})


class Reported(Case):
    """A case as intake publishes it now: the reporter masked on wangge.cases, the contact on wangge.contacts."""

    def __init__(self, phone: str | None, name: str = "张先生"):
        super().__init__(phone)
        self.name = name

    def reported(self) -> Envelope:
        return self._env(CaseReported(
            case_no=self.no, source="hotline", external_id=f"h-{self.id[:8]}", description="路灯不亮",
            address="文化路12号", reporter=Reporter(name="张**", phone="139****" + self.phone[-4:]) if self.phone else None,
            observed_at=now()), "intake")

    def contact(self) -> Envelope:
        assert self.phone
        return self._env(ContactRecorded(case_no=self.no, name=self.name, phone=self.phone), "intake")


async def contacts(notify: Notify, *envelopes: Envelope) -> None:
    for envelope in envelopes:
        await publish(notify.settings.kafka_bootstrap, notify.service.runtime.topics.contacts, envelope,
                      key=envelope.case_id)


async def test_replies_reach_the_resident_whether_the_contact_or_the_case_events_come_first(notify: Notify):
    early, late, landline = Reported(A_PHONE), Reported(B_PHONE), Reported(C_PHONE)
    landline.phone = "0632-3311234"
    pool, topics = notify.service.runtime.pool, notify.service.runtime.topics
    async with TopicReader(notify.settings.kafka_bootstrap, topics.replies) as replies:
        # Contact first: the acknowledgement goes out at once.
        await contacts(notify, early.contact())
        await eventually(lambda: pool.fetchval("SELECT EXISTS (SELECT 1 FROM contacts WHERE case_id = $1)", early.id))
        await notify.cases(early.reported(), early.accepted())
        [ack] = await at_least(replies, 1, of_case(early))
        assert (ack["data"]["kind"], ack["data"]["state"], ack["data"]["to"]) == ("acknowledgement", "sent", "139****1001")

        # Case events first: the acknowledgements and the progress reply wait for the contact; none is lost.
        await notify.cases(late.reported(), late.accepted(), late.signed(), landline.reported(), landline.accepted())
        async def awaiting() -> list:
            rows = await pool.fetch("SELECT kind, to_phone FROM deliveries WHERE case_id = ANY($1::text[]) "
                                    "AND state = 'awaiting_contact'", [late.id, landline.id])
            return rows if len(rows) == 3 else []
        waiting = await eventually(awaiting)
        assert await replies.all_within(1.5, of_case(late, landline)) == []
        assert sorted(r["kind"] for r in waiting) == ["acknowledgement", "acknowledgement", "progress"]
        assert {r["to_phone"] for r in waiting} == {""} and notify.sms_to(B_PHONE) == []

        await contacts(notify, late.contact(), landline.contact())
        found = await at_least(replies, 3, of_case(late, landline))
        found = await replies.all_within(1.5, of_case(late, landline))
    kinds = sorted((m["data"]["case_no"], m["data"]["kind"], m["data"]["state"], m["data"]["to"]) for m in found)
    assert kinds == sorted([(late.no, "acknowledgement", "sent", "139****2002"), (late.no, "progress", "sent", "139****2002"),
                            (landline.no, "acknowledgement", "held", "0632-****1234")])
    assert len(notify.sms_to(B_PHONE)) == 2 and all(m["repeats"] == 0 for m in notify.sink.messages)
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE state = 'awaiting_contact'") == 0
    # A case whose report gave no phone is not waited for.
    silent = Reported(None)
    await notify.cases(silent.reported(), silent.accepted())
    await asyncio.sleep(1.5)
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE case_id = $1", silent.id) == 0


async def test_a_report_merged_before_its_contact_arrived_still_follows_the_case(notify: Notify):
    target, duplicate = Reported(A_PHONE), Reported(B_PHONE)
    async with TopicReader(notify.settings.kafka_bootstrap, notify.service.runtime.topics.replies) as replies:
        await contacts(notify, target.contact())
        await notify.cases(target.reported(), target.accepted(), duplicate.reported())
        await at_least(replies, 1, of_case(target))
        await notify.cases(duplicate.merged(target))
        await eventually(lambda: notify.service.runtime.pool.fetchval(
            "SELECT state = 'merged' FROM case_status WHERE case_id = $1", duplicate.id))
        await contacts(notify, duplicate.contact())
        [merged] = await at_least(replies, 1, of_case(duplicate))
        await notify.cases(target.signed())
        signed = await at_least(replies, 3, of_case(target))
    assert merged["data"]["kind"] == "progress" and merged["data"]["to"] == "139****2002"
    assert sorted(m["data"]["to"] for m in signed if m["data"]["kind"] == "progress") == ["139****1001", "139****2002"]


async def test_after_the_survey_window_the_residents_data_is_erased_recorded_and_announced(notify: Notify):
    case, follower = Reported(A_PHONE, "李先生"), Reported(B_PHONE)
    pool, topics = notify.service.runtime.pool, notify.service.runtime.topics
    async with TopicReader(notify.settings.kafka_bootstrap, topics.replies, topics.cases) as reader:
        await contacts(notify, case.contact(), follower.contact())
        await eventually(lambda: pool.fetchval("SELECT count(*) = 2 FROM contacts WHERE case_id = ANY($1::text[])",
                                               [case.id, follower.id]))
        await notify.cases(case.reported(), case.accepted(), follower.reported(), follower.merged(case))
        await at_least(reader, 2, of_case(case, follower))
        # Closed eight days ago: the seven-day survey window closed yesterday, erase_after_days is 0.
        await notify.cases(case.closed(at=now() - timedelta(days=8)))
        erased = await reader.wait_for(lambda m: m.get("type") == "case.personal-data-erased", timeout=30)
        both = await at_least(reader, 2, lambda m: m.get("type") == "case.personal-data-erased")
        assert {m["case_id"] for m in both} == {case.id, follower.id}
        mine = next(m for m in both if m["case_id"] == case.id)
        assert mine["_key"] == case.id and mine["source"] == "notify"
        assert sorted(mine["data"]["fields"]) == ["delivery_addresses", "follower_phones", "name", "phone"]
        assert "李" not in str(erased) and not FULL_MOBILE.search(str(both))

        # Reopened later than that: no contact; the reply is held with the reason, nothing is sent.
        sent_before = len(notify.sink.messages)
        await notify.cases(case.reopened())
        held = await reader.wait_for(lambda m: of_case(case)(m) and m["data"]["kind"] == "progress", timeout=20)
    assert held["data"]["state"] == "held" and "erased" in held["data"]["detail"] and held["data"]["to"] == "****"
    assert len(notify.sink.messages) == sent_before

    assert await pool.fetchval("SELECT count(*) FROM contacts WHERE case_id = ANY($1::text[])", [case.id, follower.id]) == 0
    assert await pool.fetchval("SELECT count(*) FROM followers") == 0
    phones = [r["to_phone"] for r in await pool.fetch("SELECT to_phone FROM deliveries WHERE case_id = ANY($1::text[])",
                                                      [case.id, follower.id])]
    assert phones and not any(FULL_MOBILE.search(p) for p in phones)
    records = {r["case_id"]: r for r in await pool.fetch("SELECT case_id, case_no, erased_at, what FROM erasures")}
    assert set(records) == {case.id, follower.id} and records[case.id]["case_no"] == case.no
    assert "phone" in records[follower.id]["what"]
    # The contact replayed from wangge.contacts after the erasure stays erased; the resident's phone proves nothing now.
    await contacts(notify, _replayed(case))
    await asyncio.sleep(1.5)
    assert await pool.fetchval("SELECT count(*) FROM contacts") == 0
    async with notify.http() as resident:
        lookup = await resident.post("/api/v1/my-case", json={"case_no": case.no, "phone": A_PHONE})
    assert lookup.status_code == 404


def _replayed(case: Reported) -> Envelope:
    """The same contact again, with a new event id (a producer's retry or a replayed topic)."""
    return ContactRecorded(case_no=case.no, name=case.name, phone=case.phone).envelope(source="intake",
                                                                                        case_id=case.id)


async def test_a_case_still_open_or_within_its_window_keeps_its_contact(notify: Notify):
    open_case, surveyed = Reported(A_PHONE), Reported(B_PHONE)
    pool = notify.service.runtime.pool
    async with TopicReader(notify.settings.kafka_bootstrap, notify.service.runtime.topics.replies) as replies:
        await contacts(notify, open_case.contact(), surveyed.contact())
        await notify.cases(open_case.reported(), open_case.accepted(), surveyed.reported(), surveyed.accepted(),
                           surveyed.closed())
        await replies.wait_for(lambda m: of_case(surveyed)(m) and m["data"]["kind"] == "survey", timeout=20)
    await asyncio.sleep(1.0)  # several rounds of the erasure worker
    assert await pool.fetchval("SELECT count(*) FROM contacts") == 2
    assert await pool.fetchval("SELECT count(*) FROM erasures") == 0

"""A resident's first contact kept (issue 18, item 2), attacked on the real broker: a later contact.recorded for
the same case never replaces the phone — unsigned, it is refused; signed (a replay under a new id), it is ignored —
so nobody can take over a case's survey, my-case or replies by publishing another phone for it."""
from __future__ import annotations

import pytest

from shared.contracts import Envelope
from shared.contracts.contacts import ContactRecorded
from shared.topics import Topics
from tests.notify_running import Notify, notify  # noqa: F401 (the fixture)
from tests.integration.test_privacy_notify import A_PHONE, B_PHONE, Reported, contacts
from tests.support import TopicReader, eventually, publish

pytestmark = pytest.mark.integration


def other_phone(case: Reported, phone: str) -> Envelope:
    return ContactRecorded(case_no=case.no, name="冒名者", phone=phone).envelope(source="intake", case_id=case.id)


async def test_a_later_contact_never_replaces_the_residents_phone(notify: Notify):
    pool = notify.service.runtime.pool
    topics = Topics(notify.settings.topic_prefix)
    case = Reported(A_PHONE)
    await notify.cases(case.reported())
    await contacts(notify, case.contact())
    await eventually(lambda: pool.fetchval("SELECT phone = $2 FROM contacts WHERE case_id = $1", case.id, A_PHONE))
    async with TopicReader(notify.settings.kafka_bootstrap, topics.rejected_for(topics.contacts)) as rejected:
        # Unsigned (anyone on the broker): refused, with the reason.
        anonymous = other_phone(case, B_PHONE)
        await publish(notify.settings.kafka_bootstrap, topics.contacts, anonymous, key=case.id, signed_as=None)
        got = await rejected.wait_for(lambda m: m["data"]["original"].get("id") == anonymous.id, 30)
        assert "contact.recorded refused: not signed" in got["data"]["reason"]
    # Signed as intake (a replay under a new id, or intake itself): handled, and the first contact stays.
    replaced = other_phone(case, B_PHONE)
    await contacts(notify, replaced)
    await eventually(lambda: pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM processed_events WHERE event_id = $1)", replaced.id))
    row = await pool.fetchrow("SELECT phone, name FROM contacts WHERE case_id = $1", case.id)
    assert (row["phone"], row["name"]) == (A_PHONE, case.name)

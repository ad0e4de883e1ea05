"""A whole loop with all four services, then every message of the case log, the task topics and the
replies scanned: no full phone number and no reporter's name anywhere; the resident still answered
at every step (the contact travels on wangge.contacts alone)."""
from __future__ import annotations

import pytest

from shared.contracts.tasks import TaskAccepted
from tests.e2e.conftest import mail_sink, sms_gateway, street  # noqa: F401 (fixtures)
from tests.e2e.test_closed_loop import OPERATOR, OWNER, loop, phone, report  # noqa: F401 (the fixture)
from tests.privacy import FULL_MOBILE
from tests.support import TopicReader, eventually

pytestmark = pytest.mark.e2e

NAME = "欧阳娜娜"


@pytest.fixture
def isolated(isolated):
    """The street's settings: wangge.contacts cut every second (services: 10 s), so the test need not wait."""
    return isolated.model_copy(update={"trim_interval_seconds": 1.0})


async def test_no_name_or_full_phone_on_the_case_log_or_task_topics_after_a_whole_loop(loop):
    street, resident, neighbour = loop.street, phone(), phone()
    body = report(resident, reporter={"name": NAME, "phone": f"+86 {resident[:3]} {resident[3:7]} {resident[7:]}"},
                  description=f"垃圾箱损坏，垃圾外溢；邻居{neighbour}也可作证，座机0632-3311234")
    case = await loop.report(body)
    case_id, case_no = case["case_id"], case["case_no"]
    await loop.task(case_id, OWNER)
    await loop.reply(case_id, "acknowledgement")
    # The owner signs as soon as it has its task: an update that overtakes the case log's case.dispatched is held
    # until supervision folds it (tests/integration/test_held_updates.py).
    await loop.owner_update(case_id, TaskAccepted(case_no=case_no, owner=OWNER))
    await loop.reply(case_id, "progress")
    resolved = await loop.post(street.supervision, f"e2e-owner-{OWNER}", f"/api/v1/tasks/{case_no}/updates",
                               {"type": "task.resolved", "result": "已更换新垃圾箱并清运垃圾", "media": []})
    assert resolved.status_code == 200, resolved.text
    await loop.state(case_no, "resolved")
    checked = await loop.post(street.supervision, OPERATOR, f"/api/v1/cases/{case_no}/check",
                              {"passed": True, "note": "现场核查已整改"})
    assert checked.status_code == 200, checked.text
    await loop.reply(case_id, "resolution")
    await loop.reply(case_id, "survey")
    answered = await loop.post(street.notify, None, f"/api/v1/surveys/{case_no}",
                               {"phone": resident, "verdict": "satisfied", "comment": f"谢谢，有事打{resident}"})
    assert answered.status_code == 200, answered.text
    survey = await loop.cases.wait_for(lambda m: m["type"] == "case.survey-answered" and m["case_id"] == case_id, 30)
    await loop.replies.all_within(1.0, lambda m: False)  # let the last messages of every topic arrive

    # The resident heard every step, by SMS to the number given.
    kinds = sorted(m[2]["data"]["kind"] for m in loop.replies.seen if m[2].get("case_id") == case_id)
    assert kinds == ["acknowledgement", "progress", "resolution", "survey"]
    assert all(m[2]["data"]["state"] == "sent" for m in loop.replies.seen if m[2].get("case_id") == case_id)

    # Every message of the test's case log, task topics and replies: masked, and no name.
    messages = [m for reader in (loop.cases, loop.tasks, loop.replies) for _t, _k, m in reader.seen]
    assert len(messages) >= 12
    leaks = [m for m in messages if FULL_MOBILE.search(str(m)) or NAME in str(m) or "0632-3311234" in str(m)]
    assert leaks == []
    reported = next(m for m in messages if m.get("type") == "case.reported" and m["case_id"] == case_id)
    assert reported["data"]["reporter"] == {"name": "欧***", "phone": f"{resident[:3]}****{resident[-4:]}", "email": None}
    assert f"邻居{neighbour[:3]}****{neighbour[-4:]}也可作证" in reported["data"]["description"]
    assigned = next(m for m in messages if m.get("type") == "task.assigned" and m["case_id"] == case_id)
    assert assigned["data"]["description"] == reported["data"]["description"]
    assert survey["data"]["comment"] == f"谢谢，有事打{resident[:3]}****{resident[-4:]}"

    # The contact itself went on wangge.contacts, the one topic notify alone reads: notify holds it (the SMS above
    # reached the number given), and the topic no longer does — notify cut it once taken (shared/trim.py).
    held = await street.notify.runtime.pool.fetchrow("SELECT name, phone FROM contacts WHERE case_id = $1", case_id)
    assert held["name"] == NAME and held["phone"].replace(" ", "").endswith(resident)
    topics = street.intake.runtime.topics

    async def cut() -> bool:
        async with TopicReader(street.settings.kafka_bootstrap, topics.contacts) as contacts:
            return await contacts.all_within(1.5, lambda m: m.get("case_id") == case_id) == []
    await eventually(cut, timeout=15)  # a trim pass every second here (the fixture below)

    # The operators' view of the case: the reporter masked too.
    view = await loop.state(case_no, "closed")
    assert NAME not in str(view) and not FULL_MOBILE.search(str(view))

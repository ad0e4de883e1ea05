"""An escalation to the street leadership reaches the 带班领导 on duty by SMS, once per escalation: supervision
escalates an overdue case on the real Kafka and PostgreSQL, notify sends through the local SMS sink."""
from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from shared.clock import now, to_street_time
from shared.contracts import Envelope
from shared.contracts.cases import CaseEscalated, CaseReported
from shared.street import read_duty_roster, street_config_folder
from tests.notify_running import Notify, notify  # noqa: F401 — the fixture: notify and its sink
from tests.supervision_cases import start
from tests.support import TopicReader

pytestmark = pytest.mark.integration


def leader_on_duty(settings, escalated: dict):
    """The leader the street's duty roster names for the street day of the escalation."""
    roster = read_duty_roster(street_config_folder(settings.street_dir, settings.street_config_dir))
    day = to_street_time(Envelope.model_validate({k: v for k, v in escalated.items() if not k.startswith("_")})
                         .occurred_at).date()
    leader = roster.on_duty(day)
    assert leader is not None, f"the demo street's roster leaves {day} open"
    return leader


async def until(condition, timeout: float = 30) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), timeout)


async def test_an_escalation_to_the_leadership_sends_one_sms_to_the_leader_on_duty(notify: Notify):  # noqa: F811
    settings = notify.settings.model_copy(update={"deadline_poll_seconds": 0.2})
    supervision = await start(settings)
    topics = supervision.runtime.topics
    try:
        case_id, case_no = f"lead-{uuid.uuid4().hex[:6]}", f"20261120-{uuid.uuid4().int % 10000:04d}"
        # Reported ten days ago and never dispatched: the command center's own stage is long overdue, and a late
        # command center goes straight to the street leadership.
        held = CaseReported(case_no=case_no, source="hotline", external_id=f"x-{case_id}", category="CM04",
                            description="垃圾堆放", observed_at=now(), unit_grid="3704020010010101") \
            .envelope(source="intake", case_id=case_id, occurred_at=now() - timedelta(days=10))
        async with TopicReader(settings.kafka_bootstrap, topics.cases, topics.replies) as seen:
            await notify.cases(held)
            escalated = await seen.wait_for(lambda m: m["type"] == "case.escalated" and m["case_id"] == case_id, 30)
            assert escalated["data"]["level"] == "leadership" and escalated["source"] == "supervision"
            leader = leader_on_duty(settings, escalated)
            await until(lambda: notify.sms_to(leader.phone))
            [sms] = notify.sms_to(leader.phone)
            assert sms["text"].startswith(f"【{settings.sms_signature}】{leader.name}：案件{case_no}已升级至街道领导督办")
            assert "届满" in sms["text"]

            # The same escalation again (a replay), and one to the command center (its own topic tells it): no SMS.
            # Then a second escalation to the leadership: a second SMS. The case's events share a partition, so
            # notify has handled the first two when the third's SMS arrives.
            replay = Envelope.model_validate({k: v for k, v in escalated.items() if not k.startswith("_")})
            to_center = CaseEscalated(case_no=case_no, owner="huanwei", level="command_center", reason="处置时限届满") \
                .envelope(source="supervision", case_id=case_id)
            again = CaseEscalated(case_no=case_no, owner="zhzx", stage="check", level="leadership",
                                  reason="核查时限已届满，案件未办结").envelope(source="supervision", case_id=case_id)
            await notify.cases(replay, to_center, again)
            await until(lambda: len(notify.sms_to(leader.phone)) == 2 or len(notify.sink.messages) > 2)
            texts = [m["text"] for m in notify.sink.messages]
            assert len(texts) == 2 and "核查时限" in texts[1], texts
            assert all(m["repeats"] == 0 for m in notify.sink.messages)

            # A message to the street's staff is not a reply to a resident: nothing on wangge.replies.
            replies = await seen.all_within(1.5, lambda m: m["_topic"] == topics.replies)
            assert replies == []

        # The operators' view shows both, the leader's number masked.
        async with await notify.operator() as operator:
            view = await asyncio.wait_for(operator.get("/api/v1/deliveries", params={"case_no": case_no}), 10)
        assert view.status_code == 200
        deliveries = view.json()["deliveries"]
        assert [(d["kind"], d["state"]) for d in deliveries] == [("escalation", "sent")] * 2
        assert {d["to"] for d in deliveries} == {leader.phone[:3] + "****" + leader.phone[-4:]}
        assert leader.phone not in view.text
    finally:
        await asyncio.wait_for(supervision.runtime.stop(), 30)


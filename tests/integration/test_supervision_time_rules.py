"""The street's time rules on the real broker and database: the configuration edited through the admin API,
the sign and check stage limits, the escalation ladder climbing level by level, and deadlines that came
due while supervision was down firing once after it is back."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from shared.clock import now
from shared.contracts.cases import CaseResolved, CaseSigned
from shared.contracts.common import TimeLimit
from shared.topics import Topics, ensure_topics
from tests.conftest import drop_schemas
from tests.supervision_cases import accepted, dispatched, reported, send, start
from tests.support import TopicReader, eventually, grant

pytestmark = pytest.mark.integration

OWNER = "huanwei"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def admin(service) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://supervision",
                             headers={"Authorization": "Bearer rules-admin"}, timeout=10)


async def test_the_work_periods_read_back_are_accepted_and_can_be_changed(isolated):
    service = await start(isolated)
    try:
        await grant(isolated, service, token="rules-admin", name="管理员", role="admin")
        async with admin(service) as http:
            current = (await http.get("/api/v1/admin/street-config")).json()
            assert current["config"]["calendar"]["periods"] == [["08:30", "12:00"], ["13:30", "17:30"]]
            # What GET answered, PUT back as it is (every section, the periods included), is taken unchanged.
            same = await http.put("/api/v1/admin/street-config", json=current["config"])
            assert same.status_code == 200, same.text
            assert same.json()["version"] == current["version"] + 1
            assert same.json()["config"] == current["config"]

            summer = [["08:00", "12:00"], ["14:00", "18:00"]]
            changed = await http.put("/api/v1/admin/street-config",
                                     json={**current["config"], "calendar": {"periods": summer}, "note": "夏令作息"})
            assert changed.status_code == 200, changed.text
            read_back = (await http.get("/api/v1/admin/street-config")).json()
            assert read_back["config"]["calendar"]["periods"] == summer
            assert read_back["history"][0]["note"] == "夏令作息"
            assert read_back["history"][0]["old_config"]["calendar"]["periods"] == current["config"]["calendar"]["periods"]

            # Still refused with a reason when a pair is not two HH:MM times.
            for bad in ([["08:00"]], [["8:00", "12:00"]], [["12:00", "08:00"]]):
                refused = await http.put("/api/v1/admin/street-config", json={"calendar": {"periods": bad}})
                assert refused.status_code == 422, (bad, refused.text)
        # Clocks opened from now on count in the new periods: reported at 07:30 on a Wednesday, the dispatch stage
        # (1 work hour) is due at 09:00, not at 09:30 as under the old 08:30 start.
        case_id, case_no = f"periods-{uuid.uuid4().hex[:6]}", "20261118-0031"
        early = datetime(2026, 11, 18, 7, 30, tzinfo=SHANGHAI)
        report = reported(case_id, case_no).model_copy(update={"occurred_at": early})
        await send(isolated, report)
        due = await eventually(lambda: service.runtime.pool.fetchval(
            "SELECT due_at FROM clocks WHERE case_id = $1 AND kind = 'dispatch'", case_id))
        assert due == datetime(2026, 11, 18, 9, 0, tzinfo=SHANGHAI)
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)


async def test_stage_limits_and_the_ladder_follow_the_configuration(make_settings):
    settings = make_settings(deadline_poll_seconds=0.2)
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings.kafka_bootstrap, topics.fixed() + [topics.for_owner(o) for o in (OWNER, "zhzx")])
    service = await start(settings)
    try:
        await grant(settings, service, token="rules-admin", name="管理员", role="admin")
        async with admin(service) as http:
            current = (await http.get("/api/v1/admin/street-config")).json()
            assert current["config"]["stages"]["sign"] == {"value": 2.0, "unit": "work_hours"}
            wrong = await http.put("/api/v1/admin/street-config", json={"reminder": {"fraction": 1.5}})
            assert wrong.status_code == 422
            # Re-escalate every ~2 seconds while overdue, so the test sees the ladder climb.
            changed = await http.put("/api/v1/admin/street-config", json={
                "escalation": {"ladder": ["command_center", "leadership"], "interval": {"value": 0.0005, "unit": "hours"}},
                "note": "测试：缩短再督办间隔"})
            assert changed.status_code == 200, changed.text
            body = changed.json()
            assert body["version"] == current["version"] + 1 and body["history"][0]["changed_by"] == "admin:管理员"
            assert body["config"]["escalation"]["interval"] == {"value": 0.0005, "unit": "hours"}

        long_ago = now().replace(microsecond=0) - timedelta(days=10)
        late, checked = (f"rules-{uuid.uuid4().hex[:6]}", "20261118-0001"), (f"rules-{uuid.uuid4().hex[:6]}", "20261118-0002")
        async with TopicReader(settings.kafka_bootstrap, topics.cases, topics.tasks(OWNER), topics.tasks("zhzx")) as seen:
            for case_id, case_no in (late, checked):
                await send(settings, reported(case_id, case_no), accepted(case_id, case_no),
                           dispatched(case_id, case_no, owner=OWNER, category="CM04", at=long_ago,
                                      limit=TimeLimit(value=2, unit="hours"), due=long_ago + timedelta(hours=2)))
            # The second case was signed and resolved ten days ago, and nobody checked it on site.
            signed = CaseSigned(case_no=checked[1], owner=OWNER, update_id="u-sign") \
                .envelope(source="supervision", case_id=checked[0], occurred_at=long_ago + timedelta(minutes=5))
            resolved = CaseResolved(case_no=checked[1], owner=OWNER, result="已处理", update_id="u-res") \
                .envelope(source="supervision", case_id=checked[0], occurred_at=long_ago + timedelta(minutes=30))
            await send(settings, signed, resolved)

            def fired(case_id: str, type_: str, **data) -> object:
                return seen.wait_for(lambda m: m["type"] == type_ and m["case_id"] == case_id
                                     and all(m["data"].get(k) == v for k, v in data.items()), 40)

            # 签收 never came for the first case: the sign stage is overdue, on the owner.
            sign = await fired(late[0], "case.overdue", stage="sign")
            assert sign["data"]["owner"] == OWNER
            # Its handling limit passed too: command center first, then, still overdue, leadership.
            first = await fired(late[0], "case.escalated", stage="handling", level="command_center")
            second = await fired(late[0], "case.escalated", stage="handling", level="leadership")
            assert second["occurred_at"] > first["occurred_at"]
            told = await fired(late[0], "task.escalated")
            assert told["_topic"] in (topics.tasks(OWNER), topics.tasks("zhzx"))
            # The on-site check of the resolved case is the command center's own stage: late, it goes to leadership.
            check = await fired(checked[0], "case.overdue", stage="check")
            assert check["data"]["owner"] == "zhzx"
            await fired(checked[0], "case.escalated", stage="check", level="leadership")
            # Each level once, however often the poller runs.
            again = await seen.all_within(3.0, lambda m: m["type"] == "case.escalated" and m["case_id"] == late[0]
                                          and m["data"]["stage"] == "handling")
        assert sorted(m["data"]["level"] for m in again) == ["command_center", "leadership"]
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)
        await drop_schemas(settings)


async def test_deadlines_due_while_supervision_was_down_fire_once_after_restart(make_settings):
    settings = make_settings(deadline_poll_seconds=0.2)
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings.kafka_bootstrap, topics.fixed() + [topics.for_owner(OWNER)])
    service = await start(settings)
    case_id, case_no = f"down-{uuid.uuid4().hex[:6]}", "20261128-0777"
    try:
        at = now()
        # 0.001 hours = 3.6 s: due while supervision is stopped below.
        await send(settings, reported(case_id, case_no), accepted(case_id, case_no),
                   dispatched(case_id, case_no, owner=OWNER, category="CM04", at=at,
                              limit=TimeLimit(value=0.001, unit="hours"), due=at + timedelta(seconds=3.6)))
        pool = service.runtime.pool

        async def folded() -> None:
            while not await pool.fetchval("SELECT state = 'dispatched' FROM cases WHERE case_id = $1", case_id):
                await asyncio.sleep(0.1)
        await asyncio.wait_for(folded(), 20)
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)
    await asyncio.sleep(5)  # the deadline passes while nothing runs
    async with TopicReader(settings.kafka_bootstrap, topics.cases) as seen:
        service = await start(settings)
        try:
            await seen.wait_for(lambda m: m["type"] == "case.overdue" and m["case_id"] == case_id
                                and m["data"]["stage"] == "handling", 30)
            overdue = await seen.all_within(2.0, lambda m: m["type"] == "case.overdue" and m["case_id"] == case_id
                                            and m["data"]["stage"] == "handling")
            assert len(overdue) == 1
        finally:
            await asyncio.wait_for(service.runtime.stop(), 30)
            await drop_schemas(settings)

"""notify closing the loop on the real broker and database: every reply kind, followers, outages,
resends, uncertain sends, surveys (web and SMS) and the resident's own case."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from shared.clock import now
from tests.notify_cases import A_PHONE, B_PHONE, C_PHONE, Case, at_least, closed_case, of_case
from tests.notify_running import GATEWAY_TOKEN, Notify, notify  # noqa: F401 (the fixture)
from tests.support import TopicReader

pytestmark = pytest.mark.integration

NOT_FOUND = "no such case for this phone (未找到与该手机号对应的案件)"


async def test_every_reply_kind_reaches_the_reporter_and_the_merged_follower(notify: Notify):
    a, b, c = Case(A_PHONE), Case(" 139-0000-2002 "), Case(C_PHONE)
    topics = notify.service.runtime.topics
    async with TopicReader(notify.settings.kafka_bootstrap, topics.replies) as replies:
        await notify.cases(a.reported(), a.accepted(), b.reported(), c.reported(), c.rejected("不属于本街道辖区。"))
        await at_least(replies, 2, of_case(a, c))
        # The merge is committed before the followed case moves on (different partitions, no order between them).
        await notify.cases(b.merged(a))
        [merged] = await at_least(replies, 1, of_case(b))
        assert merged["data"]["kind"] == "progress" and f"与案件{a.no}为同一问题" in merged["data"]["text"]
        signed = a.signed()
        await notify.cases(
            a.dispatched(), signed,
            a.extension(True, datetime(2026, 11, 30, 9, 30, tzinfo=timezone.utc)),
            a.extension(False, datetime(2026, 12, 30, 9, 30, tzinfo=timezone.utc)),
            a.explained("需待热力公司停暖后施工，预计明年4月处理"),
            a.closed(), a.reopened(),
        )
        # a: acknowledgement + 6, b: merged + 6 (every later reply of a), c: rejection.
        found = await at_least(replies, 15, of_case(a, b, c))
        await notify.cases(signed)  # a replay of one event: nothing new
        found = await replies.all_within(2.5, of_case(a, b, c))
    assert len(found) == 15 and {m["data"]["state"] for m in found} == {"sent"}
    keys = {a.no: a.id, b.no: b.id, c.no: c.id}
    assert all(m["_key"] == keys[m["data"]["case_no"]] for m in found)
    by_phone: dict[str, list[dict]] = {}
    for m in found:
        by_phone.setdefault(m["data"]["to"], []).append(m["data"])
    kinds = lambda to: sorted(d["kind"] for d in by_phone[to])  # noqa: E731
    assert kinds("139****1001") == sorted(["acknowledgement", "progress", "progress", "explanation", "resolution",
                                           "survey", "progress"])
    assert kinds("139****2002") == sorted(["progress", "progress", "progress", "explanation", "resolution", "survey",
                                           "progress"])
    assert kinds("139****3003") == ["rejection"]
    texts = [m["text"] for m in notify.sms_to(B_PHONE)]
    assert len(texts) == 7 and all(t.startswith("【文化路街道】") for t in texts)
    assert any("已由责任单位签收，正在处置" in t for t in texts)
    assert any("11月30日17:30" in t for t in texts) and not any("12月30日" in t for t in texts)
    assert any("需待热力公司停暖后施工" in t for t in texts) and any("已办结：已更换灯泡，恢复照明。" in t for t in texts)
    assert any("请回复1满意、2基本满意、3不满意" in t for t in texts) and any("已重新交办" in t for t in texts)
    [rejection] = notify.sms_to(C_PHONE)
    assert "原因：不属于本街道辖区。" in rejection["text"]
    assert all(m["repeats"] == 0 for m in notify.sink.messages) and len(notify.sink.messages) == 15

    async with notify.http() as resident:
        mine = await asyncio.wait_for(resident.post("/api/v1/my-case", json={"case_no": b.no, "phone": B_PHONE}), 10)
        theirs = await asyncio.wait_for(resident.post("/api/v1/my-case", json={"case_no": a.no,
                                                                               "phone": "+86 139 0000 1001"}), 10)
    assert mine.status_code == 200, mine.text
    body = mine.json()
    assert (body["case_no"], body["status"], body["status_label"]) == (b.no, "merged", "已合并办理")
    assert body["followed"] == {"case_no": a.no, "status": "reopened", "status_label": "已重新交办"}
    assert len(body["replies"]) == 7 and {r["state"] for r in body["replies"]} == {"sent"}
    assert all(r["time"].endswith("+08:00") for r in body["replies"]) and B_PHONE not in mine.text
    assert theirs.json()["status"] == "reopened" and len(theirs.json()["replies"]) == 7


async def test_a_gateway_down_for_a_while_delivers_every_reply_once_when_it_is_back(notify: Notify):
    async with httpx.AsyncClient() as gateway:
        down = await asyncio.wait_for(gateway.post(f"{notify.gateway}/control", json={"status": 503, "seconds": 3}), 5)
    assert down.json()["status"] == "down"
    cases = [Case(f"1390000{i:04d}") for i in range(1, 5)]
    async with TopicReader(notify.settings.kafka_bootstrap, notify.service.runtime.topics.replies) as replies:
        for case in cases:
            await notify.cases(case.reported(), case.accepted())
        found = await at_least(replies, 4, of_case(*cases), timeout=30)
        found = await replies.all_within(2.0, of_case(*cases))
    assert len(found) == 4 and {m["data"]["state"] for m in found} == {"sent"}
    assert len({m["data"]["delivery_id"] for m in found}) == 4  # reply.issued once per delivery
    assert notify.sink.rejected_posts >= 4  # they did meet the outage
    assert sorted(m["ref"] for m in notify.sink.messages) == sorted(m["data"]["delivery_id"] for m in found)
    assert all(m["repeats"] == 0 for m in notify.sink.messages)
    attempts = await notify.service.runtime.pool.fetch("SELECT attempts, state FROM deliveries")
    assert all(r["state"] == "sent" and r["attempts"] >= 2 for r in attempts)


async def test_a_refusal_fails_with_the_reason_is_listed_and_resent_once(notify: Notify):
    async with httpx.AsyncClient() as gateway:
        await asyncio.wait_for(gateway.post(f"{notify.gateway}/sms/fail-next", params={"status": 400, "count": 1}), 5)
    case = Case(A_PHONE)
    async with TopicReader(notify.settings.kafka_bootstrap, notify.service.runtime.topics.replies) as replies:
        await notify.cases(case.reported(), case.accepted())
        [failed] = await at_least(replies, 1, of_case(case))
        assert failed["data"]["state"] == "failed" and "400" in failed["data"]["detail"]
        original = failed["data"]["delivery_id"]
        async with await notify.operator() as operator:
            listed = await asyncio.wait_for(operator.get("/api/v1/deliveries", params={"state": "failed"}), 10)
            [row] = listed.json()["deliveries"]
            assert row["id"] == original and "400" in row["last_error"] and row["to"] == "139****1001"
            resent = await asyncio.wait_for(operator.post(f"/api/v1/deliveries/{original}/resend"), 10)
            assert resent.status_code == 200, resent.text
            new_id = resent.json()["id"]
            assert resent.json() == {"id": new_id, "resend_of": original, "state": "pending"} and new_id != original
            sent = await replies.wait_for(lambda m: m.get("data", {}).get("delivery_id") == new_id, timeout=20)
            assert sent["data"]["state"] == "sent"
            twice = await operator.post(f"/api/v1/deliveries/{original}/resend")
            not_failed = await operator.post(f"/api/v1/deliveries/{new_id}/resend")
            unknown = await operator.post(f"/api/v1/deliveries/{uuid.uuid4()}/resend")
            garbage = await operator.post("/api/v1/deliveries/not-a-uuid/resend")
            view = (await operator.get("/api/v1/deliveries", params={"case_no": case.no})).json()["deliveries"]
        async with notify.http() as anonymous:
            no_credential = await anonymous.post(f"/api/v1/deliveries/{original}/resend")
    assert twice.status_code == 409 and new_id in twice.json()["detail"]
    assert not_failed.status_code == 409 and "sent" in not_failed.json()["detail"]
    assert unknown.status_code == 404 and garbage.status_code == 404 and no_credential.status_code == 401
    assert [(d["id"], d["state"], d["resend_of"], d["requested_by"]) for d in view] == [
        (new_id, "sent", original, "operator:值班员甲"), (original, "failed", None, None)]
    [sms] = notify.sms_to(A_PHONE)
    assert sms["ref"] == new_id and sms["repeats"] == 0


async def test_a_send_cut_off_mid_way_is_marked_uncertain_and_resent_with_the_same_key(notify: Notify):
    pool = notify.service.runtime.pool
    delivery_id, case = str(uuid.uuid4()), Case(A_PHONE)
    text = f"【文化路街道】您反映的问题已受理，案件编号{case.no}。"
    # What a worker that died after the gateway took the message leaves: the gateway has it, the row is
    # `sending` and its lease ran out.
    async with httpx.AsyncClient() as gateway:
        first = await asyncio.wait_for(gateway.post(f"{notify.gateway}/sms", json={"to": A_PHONE, "text": text, "ref": delivery_id},
                                                    headers={"Idempotency-Key": delivery_id}), 5)
    assert first.json()["duplicate"] is False
    async with TopicReader(notify.settings.kafka_bootstrap, notify.service.runtime.topics.replies) as replies:
        await pool.execute(
            """INSERT INTO deliveries(id, case_id, case_no, kind, template, channel, to_phone, text, state, attempts,
                                      source_event_id, expires_at, lease_until, lease_token)
               VALUES ($1::uuid, $2, $3, 'acknowledgement', 'acknowledgement', 'sms', $4, $5, 'sending', 0, $6,
                       now() + interval '1 hour', now() - interval '1 minute', $7)""",
            delivery_id, case.id, case.no, A_PHONE, text, str(uuid.uuid4()), uuid.uuid4(),
        )
        reply = await replies.wait_for(lambda m: m.get("data", {}).get("delivery_id") == delivery_id, timeout=20)
        more = await replies.all_within(1.5, lambda m: m.get("data", {}).get("delivery_id") == delivery_id)
    assert reply["data"]["state"] == "sent" and len(more) == 1
    [sms] = notify.sink.messages
    assert sms["ref"] == delivery_id and sms["repeats"] == 1  # the gateway saw it twice, the resident once
    async with await notify.operator() as operator:
        uncertain = (await asyncio.wait_for(
            operator.get("/api/v1/deliveries", params={"uncertain": "true"}), 10)).json()["deliveries"]
        certain = (await operator.get("/api/v1/deliveries", params={"uncertain": "false"})).json()["deliveries"]
    assert [d["id"] for d in uncertain] == [delivery_id] and certain == []
    assert uncertain[0]["state"] == "sent" and uncertain[0]["uncertain_since"].endswith("+08:00")


async def test_the_web_survey_takes_one_answer_from_the_right_phone_within_the_window(notify: Notify):
    topics = notify.service.runtime.topics
    async with TopicReader(notify.settings.kafka_bootstrap, topics.replies, topics.cases) as reader:
        case = await closed_case(notify, reader, A_PHONE)
        late = await closed_case(notify, reader, B_PHONE, at=now() - timedelta(days=8))
        still_open = Case(C_PHONE)
        await notify.cases(still_open.reported(), still_open.accepted())
        await reader.wait_for(of_case(still_open), timeout=20)

        async with notify.http("10.0.0.1") as resident:
            answer = {"phone": "+86 139-0000-1001", "verdict": "unsatisfied", "comment": "灯还是不亮，请回电13900001001"}
            wrong = await resident.post(f"/api/v1/surveys/{case.no}", json={**answer, "phone": B_PHONE})
            unknown = await resident.post("/api/v1/surveys/20990101-0000", json=answer)
            ok = await asyncio.wait_for(resident.post(f"/api/v1/surveys/{case.no}", json=answer), 10)
            twice = await resident.post(f"/api/v1/surveys/{case.no}", json={**answer, "verdict": "satisfied"})
            too_late = await resident.post(f"/api/v1/surveys/{late.no}", json={**answer, "phone": B_PHONE})
            not_closed = await resident.post(f"/api/v1/surveys/{still_open.no}", json={**answer, "phone": C_PHONE})
            bad = await resident.post(f"/api/v1/surveys/{case.no}", json={**answer, "verdict": "great"})
        event = await reader.wait_for(of_case(case, type_="case.survey-answered"), timeout=20)
        events = await reader.all_within(1.5, lambda m: m.get("type") == "case.survey-answered")

    assert wrong.status_code == unknown.status_code == 404
    assert wrong.json()["detail"] == unknown.json()["detail"] == NOT_FOUND
    assert ok.status_code == 200, ok.text
    assert ok.json()["verdict"] == "unsatisfied" and ok.json()["within_window"] is True
    assert ok.json()["answered_at"].endswith("+08:00")
    assert twice.status_code == 409 and "already answered" in twice.json()["detail"]
    assert too_late.status_code == 409 and "window" in too_late.json()["detail"]
    assert not_closed.status_code == 409 and "not closed" in not_closed.json()["detail"]
    assert bad.status_code == 422
    assert len(events) == 1 and event["_key"] == case.id and event["source"] == "notify"
    data = event["data"]
    assert (data["verdict"], data["channel"], data["within_window"]) == ("unsatisfied", "web", True)
    assert data["survey_id"] == ok.json()["survey_id"] and data["comment"] == "灯还是不亮，请回电139****1001"


async def test_wrong_guesses_are_slowed_down_per_case_and_per_client(notify: Notify):
    topics = notify.service.runtime.topics
    async with TopicReader(notify.settings.kafka_bootstrap, topics.replies) as reader:
        case = await closed_case(notify, reader, A_PHONE)
    right = {"phone": A_PHONE, "verdict": "satisfied"}
    # Five wrong phones for one case from one address: that address waits for that case…
    async with notify.http("10.0.1.1") as guesser:
        for i in range(5):
            assert (await guesser.post("/api/v1/my-case", json={"case_no": case.no, "phone": f"1380000000{i}"})
                    ).status_code == 404
        locked = await asyncio.wait_for(guesser.post(f"/api/v1/surveys/{case.no}", json=right), 10)
    assert locked.status_code == 429 and 0 < int(locked.headers["Retry-After"]) <= 900
    # …but the resident, elsewhere, is not locked out by someone else's failures.
    async with notify.http("10.0.1.99") as resident:
        answered = await asyncio.wait_for(resident.post(f"/api/v1/surveys/{case.no}", json=right), 10)
    assert answered.status_code == 200, answered.text
    # Ten unknown cases from one address: that address is locked for any case.
    async with notify.http("10.0.2.1") as scanner:
        for i in range(10):
            assert (await scanner.post("/api/v1/my-case", json={"case_no": f"20990101-00{i:02d}", "phone": A_PHONE})
                    ).status_code == 404
        blocked = await scanner.post("/api/v1/my-case", json={"case_no": "20990101-0099", "phone": A_PHONE})
    assert blocked.status_code == 429 and "Retry-After" in blocked.headers
    # The limit lives in PostgreSQL: another instance would see the same failures.
    assert await notify.service.runtime.pool.fetchval("SELECT count(*) FROM lookup_failures") == 15


async def test_an_sms_reply_answers_that_phone_s_latest_open_survey(notify: Notify):
    topics = notify.service.runtime.topics
    async with TopicReader(notify.settings.kafka_bootstrap, topics.replies, topics.cases) as reader:
        case = await closed_case(notify, reader, A_PHONE, outcome="explained")
        kinds = sorted(m[2]["data"]["kind"] for m in reader.seen if of_case(case)(m[2]))
        headers = {"X-Gateway-Token": GATEWAY_TOKEN}
        async with notify.http() as gateway:
            no_token = await gateway.post("/api/v1/sms/inbound", json={"from": A_PHONE, "text": "3"})
            chatter = await gateway.post("/api/v1/sms/inbound", json={"from": A_PHONE, "text": "谢谢"}, headers=headers)
            stranger = await gateway.post("/api/v1/sms/inbound", json={"from": C_PHONE, "text": "1"}, headers=headers)
            answer = await asyncio.wait_for(gateway.post(
                "/api/v1/sms/inbound", json={"from": "+86 139 0000 1001", "text": " ３ "}, headers=headers), 10)
            again = await gateway.post("/api/v1/sms/inbound", json={"from": A_PHONE, "text": "1"}, headers=headers)
        event = await reader.wait_for(of_case(case, type_="case.survey-answered"), timeout=20)
        events = await reader.all_within(1.5, lambda m: m.get("type") == "case.survey-answered")
        async with notify.http() as resident:
            web = await resident.post(f"/api/v1/surveys/{case.no}", json={"phone": A_PHONE, "verdict": "satisfied"})
    assert kinds == ["acknowledgement", "survey"]  # explained: no resolution reply, still a survey
    assert no_token.status_code == 401
    assert chatter.status_code == 200 and chatter.json()["matched"] is False and "1, 2, 3" in chatter.json()["reason"]
    assert stranger.status_code == 200 and stranger.json() == {"matched": False, "reason": "no open survey for this phone"}
    assert answer.status_code == 200 and answer.json()["matched"] is True, answer.text
    assert (answer.json()["case_no"], answer.json()["verdict"]) == (case.no, "unsatisfied")
    assert again.json()["matched"] is False
    assert len(events) == 1 and event["_key"] == case.id
    assert (event["data"]["verdict"], event["data"]["channel"], event["data"]["comment"]) == ("unsatisfied", "sms", None)
    assert web.status_code == 409 and "already answered" in web.json()["detail"]


async def test_a_reply_never_sent_in_its_useful_life_fails_as_expired_and_can_be_resent(notify: Notify):
    pool, case, delivery_id = notify.service.runtime.pool, Case(A_PHONE), str(uuid.uuid4())
    async with TopicReader(notify.settings.kafka_bootstrap, notify.service.runtime.topics.replies) as replies:
        # What a day-long outage of notify itself leaves: a pending reply past its expiry.
        await pool.execute(
            """INSERT INTO deliveries(id, case_id, case_no, kind, template, channel, to_phone, text, state,
                                      source_event_id, expires_at, created_at)
               VALUES ($1::uuid, $2, $3, 'acknowledgement', 'acknowledgement', 'sms', $4, '【文化路街道】已受理', 'pending',
                       $5, now() - interval '1 minute', now() - interval '25 hours')""",
            delivery_id, case.id, case.no, A_PHONE, str(uuid.uuid4()),
        )
        reply = await replies.wait_for(lambda m: m.get("data", {}).get("delivery_id") == delivery_id, timeout=20)
        assert reply["data"]["state"] == "failed" and "expired" in reply["data"]["detail"]
        assert notify.sink.messages == []
        async with await notify.operator() as operator:
            resent = await asyncio.wait_for(operator.post(f"/api/v1/deliveries/{delivery_id}/resend"), 10)
        assert resent.status_code == 200
        sent = await replies.wait_for(lambda m: m.get("data", {}).get("delivery_id") == resent.json()["id"], 20)
    assert sent["data"]["state"] == "sent" and [m["ref"] for m in notify.sink.messages] == [resent.json()["id"]]

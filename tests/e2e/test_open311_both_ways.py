"""Open311 both ways, as FixMyStreet uses it, through the real services (intake, routing, supervision, notify on
the real Kafka and PostgreSQL), driven by the spec's client in tests/open311_client.py: post a request, fetch
its updates across sign → resolve → check → close, post a comment that reaches the owner once (even posted
twice), rejected and merged requests read as what they are, paging beyond 1000."""
from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import AsyncIterator

import httpx
import pytest

from shared.clock import now
from shared.topics import ensure_topics
from tests.open311_client import Open311Client
from tests.photos import phone_jpeg
from tests.support import TopicReader, grant

pytestmark = pytest.mark.e2e

OWNER = "huanwei"
OPERATOR, OWNER_TOKEN, PORTAL = "o311-operator", "o311-owner-huanwei", "o311-portal"
POINT = {"lat": "34.871845", "long": "117.575168"}  # unit grid 3704020010010201 (龙头社区)
RESIDENT = {"first_name": "李", "last_name": "先生", "phone": "13900007311"}


@pytest.fixture
async def wangge(street) -> AsyncIterator[tuple]:
    settings = street.settings
    services = (street.intake, street.routing, street.supervision, street.notify)
    topics = street.intake.runtime.topics
    await ensure_topics(settings.kafka_bootstrap, [topics.for_owner(OWNER)])
    await grant(settings, *services, token=OPERATOR, name="值班员", role="operator")
    await grant(settings, *services, token=OWNER_TOKEN, name=OWNER, role="owner", owner_code=OWNER)
    await grant(settings, *services, token=PORTAL, name="FixMyStreet", role="hotline")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=street.intake.app), base_url="http://wangge",
                                 timeout=20) as http, \
            TopicReader(settings.kafka_bootstrap, topics.tasks(OWNER)) as tasks:
        yield street, Open311Client(http, PORTAL), tasks


async def call(service, token: str, path: str, body: dict) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://wangge",
                                 headers={"Authorization": f"Bearer {token}"}, timeout=20) as http:
        return await asyncio.wait_for(http.post(path, json=body), 20)


async def updates_until(client: Open311Client, case_no: str, code: str, since, timeout: float = 30) -> list[dict]:
    """fetch-comments until the request has an update with this external_status_code; the request's updates (its
    steps and comments: the replies to the resident, which keep the case's code, are read apart)."""
    async def poll() -> list[dict]:
        while True:
            answer = await client.updates(since, now() + timedelta(minutes=1))
            assert answer.status == 200 and answer.root == "service_request_updates", answer
            mine = [u for u in answer.entries if u["service_request_id"] == case_no
                    and not (u["description"] or "").startswith("答复居民")]
            if any(u["external_status_code"] == code for u in mine):
                return mine
            await asyncio.sleep(0.2)
    return await asyncio.wait_for(poll(), timeout)


async def test_a_request_followed_from_post_to_close_with_a_comment_reaching_the_owner_once(wangge):
    street, client, tasks = wangge
    since = now() - timedelta(seconds=5)
    services = await client.services()
    assert services.status == 200 and any(s["service_code"] == "CM04" for s in services.entries)

    posted = await client.post_request(service_code="CM04", description="垃圾箱损坏，电话13900007311",
                                       **POINT, **RESIDENT)
    assert posted.status == 201, posted.errors
    case_no = posted.entries[0]["service_request_id"]
    requested = (await client.requests(service_request_id=case_no)).entries[0]

    dispatched = await updates_until(client, case_no, "dispatched", since)
    assert dispatched[-1]["status"] == "ACTION_SCHEDULED"

    # What notify told the resident (wangge.replies) is an update too: the acknowledgement (sent at any hour) in the
    # street's words, once although its text also goes to every webhook, without the resident's number.
    async def told() -> list[dict]:
        while True:
            answer = await client.updates(since, now() + timedelta(minutes=1), service_request_id=case_no)
            replies = [u for u in answer.entries if (u["description"] or "").startswith("答复居民")]
            if replies:
                return replies
            await asyncio.sleep(0.2)
    acknowledged = await asyncio.wait_for(told(), 30)
    assert len(acknowledged) == 1 and "已受理" in acknowledged[0]["description"], acknowledged
    assert case_no in acknowledged[0]["description"] and "13900007311" not in str(acknowledged)
    assert acknowledged[0]["status"] == "UNCHANGED"  # a reply moves no state: FixMyStreet keeps its own
    tasks_url = f"/api/v1/tasks/{case_no}/updates"
    signed = await call(street.supervision, OWNER_TOKEN, tasks_url, {"type": "task.accepted"})
    assert signed.status_code == 200, signed.text
    assert (await updates_until(client, case_no, "in_progress", since))[-1]["status"] == "IN_PROGRESS"

    # The client's user comments (with a photo, multipart), and the client retries the same update_id.
    photo = {"media": ("p.jpg", phone_jpeg(), "image/jpeg")}
    first = await client.post_update(case_no, "fms-comment-1", "垃圾还在外溢，请尽快，我的电话13900007311", files=photo)
    again = await client.post_update(case_no, "fms-comment-1", "垃圾还在外溢，请尽快，我的电话13900007311", files=photo)
    assert first.status == 201 and again.status == 200, (first, again)
    update_id = first.entries[0]["update_id"]
    assert again.entries[0]["update_id"] == update_id
    note = await tasks.wait_for(lambda m: m["type"] == "task.commented" and m["data"]["case_no"] == case_no, 30)
    assert note["data"]["comment_id"] == update_id and "垃圾还在外溢" in note["data"]["note"]
    assert "13900007311" not in str(note) and note["data"]["media"][0].startswith("/media/")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=street.supervision.app), base_url="http://wangge",
                                 headers={"Authorization": f"Bearer {OWNER_TOKEN}"}, timeout=20) as owner:
        task = (await asyncio.wait_for(owner.get(f"/api/v1/tasks/{case_no}"), 20)).json()
    said = [e for e in task["history"] if e["type"] == "case.commented"]
    assert len(said) == 1 and "垃圾还在外溢" in said[0]["data"]["text"] and said[0]["data"]["media"]
    feed = await updates_until(client, case_no, "in_progress", since)
    comments = [u for u in feed if u["update_id"] == update_id]
    assert len(comments) == 1 and comments[0]["description"].startswith("居民留言") and comments[0]["media_url"]
    # The photo's media_url is one an anonymous client can fetch (FixMyStreet's add_media): its public thumbnail
    # on the front door, not /media/<id>, which needs a credential.
    photo_url = comments[0]["media_url"]
    assert photo_url.startswith(street.settings.public_url) and "/open311/v2/media/" in photo_url, photo_url
    fetched = await asyncio.wait_for(client.http.get(photo_url.removeprefix(street.settings.public_url.rstrip("/"))), 20)
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/jpeg"
    now_read = (await client.requests(service_request_id=case_no)).entries[0]
    assert now_read["status_notes"] == "责任单位已签收，正在处置"  # a comment is an update, not the case's status
    assert now_read["updated_datetime"] >= comments[0]["updated_datetime"]

    resolved = await call(street.supervision, OWNER_TOKEN, tasks_url, {"type": "task.resolved",
                                                                       "result": "已更换新垃圾箱", "media": []})
    assert resolved.status_code == 200, resolved.text
    pending = await updates_until(client, case_no, "resolved", since)
    assert pending[-1]["status"] == "IN_PROGRESS"  # done by the owner's word, not yet checked: not FIXED
    checked = await call(street.supervision, OPERATOR, f"/api/v1/cases/{case_no}/check", {"passed": True})
    assert checked.status_code == 200, checked.text
    closed = await updates_until(client, case_no, "closed-resolved", since)
    assert closed[-1]["status"] == "FIXED" and "已更换新垃圾箱" in closed[-1]["description"]
    assert len({u["update_id"] for u in closed}) == len(closed)  # every step once
    codes = [u["external_status_code"] for u in closed]
    assert codes.index("accepted") < codes.index("dispatched") < codes.index("closed-resolved")
    for update in closed:
        assert "13900007311" not in str(update) and "李" not in str(update)

    final = (await client.requests(service_request_id=case_no)).entries[0]
    assert final["status"] == "closed" and "已办结" in final["status_notes"]
    assert final["updated_datetime"] > requested["updated_datetime"]
    assert final["updated_datetime"].endswith("+08:00") and requested["requested_datetime"].endswith("+08:00")

    # The owner read the comment once, even though the client posted it twice.
    await asyncio.sleep(1)
    assert len([m for _, _, m in tasks.seen if m.get("type") == "task.commented"
                and m["data"]["case_no"] == case_no]) == 1

    # The client's user says it is not fixed (FixMyStreet's status=REOPEN, within the survey window): the case is
    # reopened — read as OPEN (FixMyStreet's "confirmed"), the request open again — and dispatched again.
    reopen = await client.post_update(case_no, "fms-reopen-1", "垃圾箱又坏了，电话13900007311", status="REOPEN")
    assert reopen.status == 201, reopen.errors
    back = await updates_until(client, case_no, "reopened", since)
    reopened = [u for u in back if u["external_status_code"] == "reopened"]
    assert len(reopened) == 1 and reopened[0]["status"] == "OPEN", reopened
    said = [u for u in back if u["update_id"] == reopen.entries[0]["update_id"]]
    assert said and said[0]["description"].startswith("居民反映问题未解决") and "13900007311" not in str(said)

    async def dispatched_again() -> list[str]:
        while True:
            codes = [u["external_status_code"] for u in await updates_until(client, case_no, "reopened", since)]
            if "dispatched" in codes[codes.index("reopened"):]:
                return codes
            await asyncio.sleep(0.2)
    await asyncio.wait_for(dispatched_again(), 30)
    assert (await client.requests(service_request_id=case_no)).entries[0]["status"] == "open"


async def test_a_reopen_on_a_case_not_closed_stays_a_comment(wangge):
    street, client, _ = wangge
    since = now() - timedelta(seconds=5)
    posted = await client.post_request(service_code="CM04", description="井盖松动", **POINT)
    case_no = posted.entries[0]["service_request_id"]
    await updates_until(client, case_no, "dispatched", since)
    said = await client.post_update(case_no, "fms-reopen-open", "还没人来", status="REOPEN")
    assert said.status == 201, said.errors
    feed = await updates_until(client, case_no, "dispatched", since)
    while not any(u["update_id"] == said.entries[0]["update_id"] for u in feed):
        await asyncio.sleep(0.2)
        feed = await updates_until(client, case_no, "dispatched", since)
    await asyncio.sleep(1)  # supervision has folded it: nothing reopens a case that was never closed
    feed = await updates_until(client, case_no, "dispatched", since)
    assert "reopened" not in [u["external_status_code"] for u in feed]
    mine = [u for u in feed if u["update_id"] == said.entries[0]["update_id"]]
    assert mine[0]["status"] == "ACTION_SCHEDULED"


async def test_rejected_and_merged_requests_are_not_read_as_fixed(wangge):
    street, client, _ = wangge
    since = now() - timedelta(seconds=5)
    target = await client.post_request(service_code="CM04", description="垃圾箱坏了", **POINT)
    junk = await client.post_request(service_code="CM04", description="不知道", address_string="不知道哪里")
    duplicate = await client.post_request(service_code="CM04", description="同一个垃圾箱", address_string="同上")
    target_no, junk_no, duplicate_no = (a.entries[0]["service_request_id"] for a in (target, junk, duplicate))
    await updates_until(client, target_no, "accepted", since)

    rejected = await call(street.intake, OPERATOR, f"/api/v1/cases/{junk_no}/reject", {"reason": "地址不明，不予受理"})
    merged = await call(street.intake, OPERATOR, f"/api/v1/cases/{duplicate_no}/merge", {"into": target_no})
    assert rejected.status_code == 200 and merged.status_code == 200, (rejected.text, merged.text)

    no = (await updates_until(client, junk_no, "rejected", since))[-1]
    assert no["status"] == "NOT_COUNCILS_RESPONSIBILITY" and "地址不明" in no["description"] and "不予立案" in no["description"]
    dup = (await updates_until(client, duplicate_no, "merged", since))[-1]
    assert dup["status"] == "DUPLICATE" and target_no in dup["description"]
    read = (await client.requests(service_request_id=duplicate_no)).entries[0]
    assert read["status"] == "closed" and target_no in read["status_notes"] and "合并" in read["status_notes"]
    assert read["status_notes"] == dup["description"]
    # GET requests tells what the updates tell: the rejected request is listed closed with 不予立案 and the reason,
    # by id and in a window (its sender's text and place are not republished).
    for listing in (await client.requests(service_request_id=junk_no), await client.requests(status="closed"),
                    await client.requests()):
        assert listing.status == 200, listing
        [junk_read] = [r for r in listing.entries if r["service_request_id"] == junk_no]
        assert junk_read["status"] == "closed" and junk_read["status_notes"] == no["description"]
        assert "不予立案" in junk_read["status_notes"] and "地址不明" in junk_read["status_notes"]
        assert "不知道哪里" not in str(junk_read) and not junk_read.get("lat")
    one = await client.http.get(f"/open311/v2/requests/{junk_no}.json")
    assert one.status_code == 200 and one.json()[0]["status"] == "closed"

    # A comment on the merged request is sent to the case it follows; on the rejected one, nobody reads it.
    to_merged = await client.post_update(duplicate_no, "c-merged", "还没修")
    assert to_merged.status == 409 and target_no in to_merged.errors[0]["description"]
    to_rejected = await client.post_update(junk_no, "c-rejected", "为什么")
    assert to_rejected.status == 409 and to_rejected.root == "errors"

    # A client whose comment ids started again (a new installation) posts an update_id it used on another request:
    # a new comment on this request, not the other request's comment answered back.
    first = await client.post_update(target_no, "c-1", "第一条")
    reused = await client.post_update(target_no, "c-1", "第一条")
    assert first.status == 201 and reused.status == 200  # the same request: the same comment
    other = await client.post_request(service_code="CM04", description="另一个问题", **POINT)
    other_no = other.entries[0]["service_request_id"]
    elsewhere = await client.post_update(other_no, "c-1", "另一条")
    assert elsewhere.status == 201 and elsewhere.entries[0]["update_id"] != first.entries[0]["update_id"]


async def test_errors_are_open311_errors_and_lists_take_commas_and_pages(wangge):
    street, client, _ = wangge
    posted = [await client.post_request(service_code="CM04", description=f"问题{i}", **POINT) for i in range(3)]
    ids = [p.entries[0]["service_request_id"] for p in posted]
    many = ",".join(ids + [f"20990101-{i:04d}" for i in range(80)])
    listed = await client.requests(service_request_id=many)
    assert listed.status == 200 and {r["service_request_id"] for r in listed.entries} == set(ids)
    both = await client.requests(status="open,closed", service_code="CM04,CM01")
    assert both.status == 200 and set(ids) <= {r["service_request_id"] for r in both.entries}

    for params in ({"status": "fixed"}, {"start_date": "yesterday"}, {"page": "0"},
                   {"start_date": "2026-12-06T10:00:00+08:00", "end_date": "2026-12-06T09:00:00+08:00"}):
        refused = await client.requests(**params)
        assert refused.status == 400 and refused.root == "errors" and refused.errors[0]["code"] == "400", params
    assert (await client.updates(start_date="not a date")).status == 400
    unknown = await client.post_update("19990101-0001", "c-1", "有人吗")
    assert unknown.status == 404 and unknown.errors[0]["code"] == "404"
    empty = await client.post_update(ids[0], "c-2", "   ")
    assert empty.status == 400
    wrong_key = await Open311Client(client.http, "no-such-key").post_update(ids[0], "c-3", "你好")
    assert wrong_key.status == 403
    latin = await client.http.post("/open311/v2/servicerequestupdates.xml", content="description=\xe9t\xe9".encode(
        "latin-1"), headers={"content-type": "application/x-www-form-urlencoded"})
    assert latin.status_code == 400 and b"<errors>" in latin.content
    bad_query = await client.http.get("/open311/v2/requests.xml?service_code=%FF")
    assert bad_query.status_code == 400 and b"<errors>" in bad_query.content
    assert (await client.http.get("/open311/v2/services.html")).status_code == 404

    definition = await client.definition("CM04")
    assert definition.tag == "service_definition" and definition.find("service_definition") is None
    assert definition.findtext("service_code") == "CM04"

    # Beyond 1000: a full page names the next one. The rows stand for 1,004 public steps an hour ago.
    pool = street.intake.runtime.pool
    case_id = await pool.fetchval("SELECT case_id FROM reports WHERE case_no = $1", ids[0])
    start = now() - timedelta(hours=2)
    await pool.executemany(
        """INSERT INTO case_updates (update_id, case_id, case_no, event_type, occurred_at, status,
                                     external_status_code, description) VALUES ($1, $2, $3, 'case.progress-reported',
                                     $4, 'IN_PROGRESS', 'in_progress', '处置进展')""",
        [(f"page-{i}", case_id, ids[0], start + timedelta(seconds=i)) for i in range(1004)])
    window = (start, start + timedelta(minutes=30))
    first = await client.updates(*window)
    assert first.status == 200 and len(first.entries) == 1000 and first.headers["x-next-page"] == "2"
    assert 'rel="next"' in first.headers["link"]
    second = await client.updates(*window, page="2")
    assert len(second.entries) == 4 and "x-next-page" not in second.headers
    seen = [u["update_id"] for u in first.entries + second.entries]
    # The latest thousand first (a client that reads one page sees what just happened), each page in time order.
    assert seen == [f"page-{i}" for i in range(4, 1004)] + [f"page-{i}" for i in range(4)]


async def test_the_same_words_told_at_two_steps_are_two_updates_and_each_once(wangge):
    """A reply is an update per reply event (DESIGN: one message on wangge.replies per reply): the owner signs, the
    check fails (返工), the owner signs again — the resident is told 已签收 twice, word for word, and the feed has both,
    each once (the reporter's copy and every other copy of one reply are one update)."""
    street, client, _ = wangge
    since = now() - timedelta(seconds=5)
    posted = await client.post_request(service_code="CM04", description="垃圾箱倒了", **POINT,
                                       first_name="王", last_name="女士", phone="13900007312")
    case_no = posted.entries[0]["service_request_id"]
    tasks_url = f"/api/v1/tasks/{case_no}/updates"
    await updates_until(client, case_no, "dispatched", since)
    for move in ({"type": "task.accepted"}, {"type": "task.resolved", "result": "已扶正", "media": []}):
        answer = await call(street.supervision, OWNER_TOKEN, tasks_url, move)
        assert answer.status_code == 200, answer.text
    await updates_until(client, case_no, "resolved", since)
    failed = await call(street.supervision, OPERATOR, f"/api/v1/cases/{case_no}/check", {"passed": False,
                                                                                          "note": "仍未扶正"})
    assert failed.status_code == 200, failed.text

    async def signed_again() -> list[dict]:
        while True:
            feed = await updates_until(client, case_no, "rework", since)
            codes = [u["external_status_code"] for u in feed]
            if "dispatched" in codes[codes.index("rework"):]:
                return feed
            await asyncio.sleep(0.2)
    await asyncio.wait_for(signed_again(), 30)
    again = await call(street.supervision, OWNER_TOKEN, tasks_url, {"type": "task.accepted"})
    assert again.status_code == 200, again.text

    async def told_twice() -> list[dict]:
        while True:
            answer = await client.updates(since, now() + timedelta(minutes=1), service_request_id=case_no)
            said = [u for u in answer.entries if "已由责任单位签收" in (u["description"] or "")]
            if len(said) >= 2:
                return said
            await asyncio.sleep(0.2)
    said = await asyncio.wait_for(told_twice(), 30)
    await asyncio.sleep(1.5)  # whatever copy comes late has come
    answer = await client.updates(since, now() + timedelta(minutes=1), service_request_id=case_no)
    said = [u for u in answer.entries if "已由责任单位签收" in (u["description"] or "")]
    assert len(said) == 2 and said[0]["description"] == said[1]["description"], said
    assert said[0]["update_id"] != said[1]["update_id"] and said[0]["updated_datetime"] <= said[1]["updated_datetime"]
    acknowledged = [u for u in answer.entries if "已受理" in (u["description"] or "") and
                    (u["description"] or "").startswith("答复居民")]
    assert len(acknowledged) == 1, acknowledged

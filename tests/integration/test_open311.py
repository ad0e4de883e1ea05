"""Open311 GeoReport v2 on intake: services, a request posted as a civic-report client would (form fields,
api_key), read back as JSON and XML without the reporter, and closed when the case closes."""
from __future__ import annotations

import asyncio
from xml.etree import ElementTree

import httpx
import pytest

from services.intake.bootstrap import build
from shared.contracts.cases import CaseClosed, CaseReopened
from shared.clock import now
from shared.topics import Topics
from tests.support import grant, publish, running

pytestmark = pytest.mark.integration

FORM = {"service_code": "CM04", "lat": "34.871845", "long": "117.575168", "description": "垃圾箱损坏，请联系13900001001",
        "first_name": "李", "last_name": "先生", "phone": "13900001001"}


@pytest.fixture
async def intake(isolated):
    async with running(build(isolated, manage_runtime=False)) as service:
        await grant(isolated, service, token="o311-portal", name="市民网站", role="hotline")
        await grant(isolated, service, token="o311-owner", name="环卫所", role="owner", owner_code="huanwei")
        yield service


def client(service) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://intake", timeout=10)


async def test_open311_services_post_and_read_requests(intake, isolated):
    async with client(intake) as http:
        services = (await http.get("/open311/v2/services.json")).json()
        cm04 = next(s for s in services if s["service_code"] == "CM04")
        assert cm04["service_name"] == "垃圾箱损坏/暴露垃圾" and cm04["type"] == "realtime" and cm04["metadata"] is False
        xml = ElementTree.fromstring((await http.get("/open311/v2/services.xml")).content)
        assert xml.tag == "services" and len(xml.findall("service")) == len(services)
        assert (await http.get("/open311/v2/services/CM04.json")).json() == {"service_code": "CM04", "attributes": []}
        missing = await http.get("/open311/v2/services/ZZ99.json")
        assert missing.status_code == 404 and missing.json()[0]["code"] == 404

        # Posting needs an api_key of a reporting credential.
        anonymous = await http.post("/open311/v2/requests.json", data=FORM)
        assert anonymous.status_code == 403 and "api_key" in anonymous.json()[0]["description"]
        owner = await http.post("/open311/v2/requests.json", data={**FORM, "api_key": "o311-owner"})
        assert owner.status_code == 403
        bad = await http.post("/open311/v2/requests.json", data={**FORM, "api_key": "o311-portal", "service_code": "ZZ"})
        assert bad.status_code == 400 and "service_code" in bad.json()[0]["description"]
        outside = await http.post("/open311/v2/requests.json",
                                  data={**FORM, "api_key": "o311-portal", "lat": "31.23", "long": "121.47"})
        assert outside.status_code == 400 and "outside the street" in outside.json()[0]["description"]
        posted = await http.post("/open311/v2/requests.json", data={**FORM, "api_key": "o311-portal"})
        assert posted.status_code == 201, posted.text
        case_no = posted.json()[0]["service_request_id"]

        one = (await http.get(f"/open311/v2/requests/{case_no}.json")).json()[0]
        assert one["status"] == "open" and one["service_code"] == "CM04" and one["lat"] == 34.871845
        assert "13900001001" not in str(one) and "李" not in str(one)  # the public never reads who reported
        listed = (await http.get("/open311/v2/requests.json", params={"service_code": "CM04", "status": "open"})).json()
        assert case_no in [r["service_request_id"] for r in listed]
        xml = ElementTree.fromstring((await http.get(f"/open311/v2/requests/{case_no}.xml")).content)
        assert xml.find("request/service_request_id").text == case_no and xml.find("request/status").text == "open"
        assert (await http.get("/open311/v2/requests/19990101-0001.json")).status_code == 404

        # The case closes (supervision's event): Open311 says closed; reopened: open again.
        case_id = await intake.runtime.pool.fetchval("SELECT case_id::text FROM reports WHERE case_no = $1", case_no)
        cases = Topics(isolated.topic_prefix).cases
        closed = CaseClosed(case_no=case_no, owner="huanwei", outcome="resolved", result="已更换", by="operator:x",
                            closed_at=now(), on_time=True).envelope(source="supervision", case_id=case_id)
        await publish(isolated.kafka_bootstrap, cases, closed, key=case_id)

        async def status_is(expected: str) -> None:
            while (await http.get(f"/open311/v2/requests/{case_no}.json")).json()[0]["status"] != expected:
                await asyncio.sleep(0.1)
        await asyncio.wait_for(status_is("closed"), 20)
        assert (await http.get("/open311/v2/requests.json", params={"status": "closed"})).json()[0][
            "service_request_id"] == case_no
        reopened = CaseReopened(case_no=case_no, owner="huanwei", reason="不满意", by="resident") \
            .envelope(source="supervision", case_id=case_id)
        await publish(isolated.kafka_bootstrap, cases, reopened, key=case_id)
        await asyncio.wait_for(status_is("open"), 20)


async def test_a_request_posted_as_multipart_with_a_photo_and_an_attribute(intake):
    from tests.photos import phone_jpeg

    async with client(intake) as http:
        posted = await http.post("/open311/v2/requests.xml", data={**FORM, "api_key": "o311-portal"},
                                 files={"media": ("photo.jpg", phone_jpeg(), "image/jpeg")})
        assert posted.status_code == 201, posted.text
        case_no = ElementTree.fromstring(posted.content).find("request/service_request_id").text
        one = (await http.get(f"/open311/v2/requests/{case_no}.json")).json()[0]
        # Stored like POST /api/v1/media's photos (/media/<id> on the case); Open311 names its public thumbnail.
        media = await intake.runtime.pool.fetchval("SELECT media->>0 FROM reports WHERE case_no = $1", case_no)
        assert media.startswith("/media/") and len(media) == len("/media/") + 64
        assert one["media_url"].startswith(f"{intake.runtime.settings.public_url}/open311/v2/media/")
        stored = await intake.runtime.pool.fetchval("SELECT count(*) FROM media_uploads WHERE media_id = $1",
                                                    media.removeprefix("/media/"))
        assert stored == 1
        not_a_photo = await http.post("/open311/v2/requests.json", data={**FORM, "api_key": "o311-portal"},
                                      files={"media": ("x.jpg", b"not a photo", "image/jpeg")})
        assert not_a_photo.status_code == 400 and not_a_photo.json()[0]["code"] == 400
        no_key = await http.post("/open311/v2/requests.json", data=FORM,
                                 files={"media": ("photo.jpg", phone_jpeg(), "image/jpeg")})
        assert no_key.status_code == 403 and "api_key" in no_key.json()[0]["description"]
        # An urgent category asks whether anyone is in danger; the answer reaches the command center.
        services = (await http.get("/open311/v2/services.json")).json()
        urgent = next(s for s in services if s["metadata"])
        definition = (await http.get(f"/open311/v2/services/{urgent['service_code']}.json")).json()
        assert definition["attributes"][0]["code"] == "danger"
        danger = await http.post("/open311/v2/requests.json", data={
            **FORM, "api_key": "o311-portal", "service_code": urgent["service_code"], "attribute[danger]": "yes"})
        assert danger.status_code == 201, danger.text
        text = await intake.runtime.pool.fetchval("SELECT description FROM reports WHERE case_no = $1",
                                                  danger.json()[0]["service_request_id"])
        assert text.startswith("【现场有安全危险】")
        wrong = await http.post("/open311/v2/requests.json", data={
            **FORM, "api_key": "o311-portal", "service_code": urgent["service_code"], "attribute[danger]": "maybe"})
        assert wrong.status_code == 400


async def test_photos_uploaded_as_fixmystreet_names_them_reach_the_request_and_the_comment(intake):
    """FixMyStreet's Open311 client (upload_files, upload_files_for_updates, always_upload_photos) posts each photo
    as a multipart file named photo1, photo2, …: taken like `media`. A file under any other name (its enquiry
    documents, file_<key>) is not a photo and is left out."""
    from tests.photos import phone_jpeg

    async with client(intake) as http:
        posted = await http.post("/open311/v2/requests.xml", data={**FORM, "api_key": "o311-portal"}, files=[
            ("photo1", ("1.0.full.jpeg", phone_jpeg(colour=(10, 10, 200)), "image/jpeg")),
            ("photo2", ("1.1.full.jpeg", phone_jpeg(colour=(10, 200, 10)), "image/jpeg")),
            ("file_form", ("form.pdf", b"%PDF-1.4 not a photo", "application/pdf"))])
        assert posted.status_code == 201, posted.text
        case_no = ElementTree.fromstring(posted.content).find("request/service_request_id").text
        media = await intake.runtime.pool.fetchval("SELECT media FROM reports WHERE case_no = $1", case_no)
        assert len(media) == 2 and all(url.startswith("/media/") for url in media), media
        read = (await http.get(f"/open311/v2/requests/{case_no}.json")).json()[0]
        assert "/open311/v2/media/" in read["media_url"]

        commented = await http.post("/open311/v2/servicerequestupdates.xml", data={
            "api_key": "o311-portal", "service_request_id": case_no, "update_id": "fms-7", "description": "附照片",
            "status": "OPEN"}, files=[("photo1", ("7.0.full.jpeg", phone_jpeg(colour=(200, 200, 10)), "image/jpeg"))])
        assert commented.status_code == 201, commented.text
        kept = await intake.runtime.pool.fetchval("SELECT media FROM case_comments WHERE case_no = $1", case_no)
        assert len(kept) == 1 and kept[0].startswith("/media/")


async def test_a_case_updates_never_go_back_in_time_and_a_reply_moves_no_state(intake, isolated):
    """A reply to the resident comes on wangge.replies and may be recorded before the case event it follows (on
    wangge.cases). The state step recorded after it is dated no earlier (a client that keeps the time of the last
    update it took, as FixMyStreet does, would otherwise ignore the state change), and the reply's status is
    UNCHANGED (it would otherwise carry the state before)."""
    from shared.contracts.replies import ReplyIssued
    from datetime import timedelta

    async with client(intake) as http:
        posted = await http.post("/open311/v2/requests.json", data={**FORM, "api_key": "o311-portal"})
        case_no = posted.json()[0]["service_request_id"]
        case_id = await intake.runtime.pool.fetchval("SELECT case_id::text FROM reports WHERE case_no = $1", case_no)
        topics = Topics(isolated.topic_prefix)
        told = now()
        reply = ReplyIssued(case_no=case_no, kind="resolution", channel="sms", to="139****1001", state="sent",
                            text=f"【文化路街道】您反映的问题（编号{case_no}）已办结：已更换。", delivery_id="d-1")
        await publish(isolated.kafka_bootstrap, topics.replies, reply.envelope(source="notify", case_id=case_id,
                                                                                occurred_at=told), key=case_id)

        async def updates(count: int) -> list[dict]:
            while True:
                answer = (await http.get("/open311/v2/servicerequestupdates.json",
                                         params={"service_request_id": case_no})).json()
                if len(answer) >= count:
                    return answer
                await asyncio.sleep(0.1)
        accepted_and_reply = await asyncio.wait_for(updates(2), 20)
        said = next(u for u in accepted_and_reply if u["description"].startswith("答复居民"))
        assert said["status"] == "UNCHANGED" and said["external_status_code"] == "accepted"
        # The close it follows, dated a second before the reply, recorded after it.
        closed = CaseClosed(case_no=case_no, owner="huanwei", outcome="resolved", result="已更换", by="operator:x",
                            closed_at=told - timedelta(seconds=1), on_time=True) \
            .envelope(source="supervision", case_id=case_id, occurred_at=told - timedelta(seconds=1))
        await publish(isolated.kafka_bootstrap, topics.cases, closed, key=case_id)
        steps = await asyncio.wait_for(updates(3), 20)
        close = next(u for u in steps if u["external_status_code"] == "closed-resolved" and u["status"] == "FIXED")
        assert close["updated_datetime"] >= said["updated_datetime"], steps
        assert [u["update_id"] for u in steps][-1] == close["update_id"]  # in the order they happened: close last


async def test_the_replies_reader_tells_each_reply_once_and_nothing_from_before_it_started(intake, isolated):
    """intake's reader of wangge.replies: one update per reply — the copies of one reply (a follower's, a resend)
    and redeliveries make none more, the same words at another step make another — and replies issued before it
    started telling them (open311_reply_horizon: a deployment that ran before the reader) are skipped, not told as
    news dated at the case's latest step. A reply issued before reply.issued named its event keeps the key of its
    time: read twice (two copies), one update."""
    from datetime import timedelta

    from shared.contracts.replies import ReplyIssued

    async with client(intake) as http:
        posted = await http.post("/open311/v2/requests.json", data={**FORM, "api_key": "o311-portal"})
        case_no = posted.json()[0]["service_request_id"]
        pool = intake.runtime.pool
        case_id = await pool.fetchval("SELECT case_id::text FROM reports WHERE case_no = $1", case_no)
        horizon = await pool.fetchval("SELECT since FROM open311_reply_horizon")
        assert horizon is not None and horizon <= now()  # a fresh deployment: from its first start on
        topics = Topics(isolated.topic_prefix)
        signed = f"【文化路街道】您反映的问题（编号{case_no}）已由责任单位签收，正在处置。"
        older = f"【文化路街道】您反映的问题（编号{case_no}）已重新交办。"

        def reply(text: str, delivery: str, event_id: str | None, at=None):
            return ReplyIssued(case_no=case_no, kind="progress", channel="sms", to="139****1001", state="sent",
                               text=text, delivery_id=delivery, event_id=event_id) \
                .envelope(source="notify", case_id=case_id, occurred_at=at or now())
        first = reply(signed, "d-1", "sign-1")
        sent = [reply("一年前的答复", "d-0", "old-1", now() - timedelta(days=300)),  # before the reader: skipped
                first, first,                       # redelivered
                reply(signed, "d-2", "sign-1"),     # the follower's copy of the same reply
                reply(signed, "d-3", "sign-2"),     # the same words at the second signing (after a rework)
                reply(older, "d-4", None), reply(older, "d-5", None)]  # issued before event_id: one for the words
        for envelope in sent:
            await publish(isolated.kafka_bootstrap, topics.replies, envelope, key=case_id)

        async def replies(count: int) -> list[dict]:
            while True:
                answer = (await http.get("/open311/v2/servicerequestupdates.json",
                                         params={"service_request_id": case_no})).json()
                told = [u for u in answer if u["description"].startswith("答复居民")]
                if len(told) >= count:
                    return told
                await asyncio.sleep(0.1)
        await asyncio.wait_for(replies(3), 20)
        await asyncio.sleep(1.5)  # anything more would have come by now
        told = await replies(3)
    assert sorted(u["description"].removeprefix("答复居民：") for u in told) == sorted([signed, signed, older])
    assert len({u["update_id"] for u in told}) == 3 and not any("一年前" in u["description"] for u in told)


async def test_a_deployment_whose_reader_ran_before_the_horizon_tells_what_it_has_not_read_yet(intake, isolated):
    """Migration 008 sets no horizon where intake had told replies already (its reader ran before): a reply of
    yesterday that it had not read yet is told."""
    from datetime import timedelta

    from shared.contracts.replies import ReplyIssued

    pool = intake.runtime.pool
    await pool.execute("UPDATE open311_reply_horizon SET since = NULL")
    async with client(intake) as http:
        posted = await http.post("/open311/v2/requests.json", data={**FORM, "api_key": "o311-portal"})
        case_no = posted.json()[0]["service_request_id"]
        case_id = await pool.fetchval("SELECT case_id::text FROM reports WHERE case_no = $1", case_no)
        late = ReplyIssued(case_no=case_no, kind="acknowledgement", channel="sms", to="139****1001", state="sent",
                           text=f"已受理（编号{case_no}）", delivery_id="d-late", event_id="acc-1") \
            .envelope(source="notify", case_id=case_id, occurred_at=now() - timedelta(days=1))
        await publish(isolated.kafka_bootstrap, Topics(isolated.topic_prefix).replies, late, key=case_id)

        async def told() -> list[dict]:
            while True:
                answer = (await http.get("/open311/v2/servicerequestupdates.json",
                                         params={"service_request_id": case_no})).json()
                if said := [u for u in answer if u["description"].startswith("答复居民")]:
                    return said
                await asyncio.sleep(0.1)
        assert len(await asyncio.wait_for(told(), 20)) == 1


async def test_a_comment_posted_before_its_key_named_the_request_and_retried_now_is_not_doubled(intake):
    """A comment is once per the client's update_id on that request; before, its key did not name the request
    (open311:<client>:<update_id>, the client then named by its credential's name: intake 009 moves it onto the
    credential). A client retrying across that change gets its comment back (200, the same update_id), and the same
    update_id on another request is still another comment."""
    from tests.security.test_open311_comment_scopes import _comment_rewrite
    pool = intake.runtime.pool
    async with client(intake) as http:
        posted = [await http.post("/open311/v2/requests.json", data={**FORM, "api_key": "o311-portal"}) for _ in range(2)]
        case_no, other_no = (p.json()[0]["service_request_id"] for p in posted)
        case_id = await pool.fetchval("SELECT case_id FROM reports WHERE case_no = $1", case_no)
        await pool.execute(
            """INSERT INTO case_comments (comment_id, sender_key, case_id, case_no, channel, text)
               VALUES ('c-before', 'open311:hotline:市民网站:fms-41', $1, $2, 'open311', '还没修')""", case_id, case_no)
        await pool.execute(_comment_rewrite())
        form = {"api_key": "o311-portal", "update_id": "fms-41", "description": "还没修", "status": "OPEN"}
        retried = await http.post("/open311/v2/servicerequestupdates.json", data={**form, "service_request_id": case_no})
        elsewhere = await http.post("/open311/v2/servicerequestupdates.json",
                                    data={**form, "service_request_id": other_no})
    assert retried.status_code == 200 and retried.json() == [{"update_id": "c-before"}], retried.text
    assert elsewhere.status_code == 201 and elsewhere.json()[0]["update_id"] != "c-before"
    assert await pool.fetchval("SELECT count(*) FROM case_comments WHERE case_no = $1", case_no) == 1


async def test_a_client_that_does_not_page_sees_the_newest_updates_of_a_busy_window(intake):
    """FixMyStreet's fetch-comments asks for the last two hours and reads one answer. A window holding more than a
    page (a busy street) must still show it what just happened: the first page is the newest."""
    pool = intake.runtime.pool
    await pool.execute(
        """INSERT INTO case_updates(update_id, case_id, case_no, event_type, occurred_at, status, external_status_code,
                                    description)
           SELECT 'busy-' || n, gen_random_uuid(), '20261201-' || lpad(n::text, 4, '0'), 'case.accepted',
                  now() - interval '1 hour' + n * interval '1 second', 'OPEN', 'accepted', '已立案'
             FROM generate_series(1, 1100) AS n""")
    async with client(intake) as http:
        posted = await http.post("/open311/v2/requests.json", data={**FORM, "api_key": "o311-portal"})
        case_no = posted.json()[0]["service_request_id"]

        async def first_page() -> list[dict]:
            while True:
                page = (await http.get("/open311/v2/servicerequestupdates.json")).json()
                if any(u["service_request_id"] == case_no for u in page):
                    return page
                await asyncio.sleep(0.1)
        page = await asyncio.wait_for(first_page(), 20)
        second = (await http.get("/open311/v2/servicerequestupdates.json", params={"page": 2})).json()
    # The latest thousand, in the order they happened (FixMyStreet takes a state only from an update no older than
    # the last it took); the page before them holds the older ones.
    assert len(page) == 1000 and page[-1]["service_request_id"] == case_no
    times, older = [u["updated_datetime"] for u in page], [u["updated_datetime"] for u in second]
    assert times == sorted(times) and older == sorted(older) and len(older) >= 100 and older[-1] <= times[0]

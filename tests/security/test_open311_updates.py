"""Open311's service request updates, attacked: a comment to a case of another jurisdiction, an unknown or held
case, without a reporting credential; and the updates feed read for personal data (the reporter's and the
commenter's names, phones and e-mail never appear in it, a number typed into a note is masked)."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from shared.clock import now
from shared.street import load_street
from tests.integration.test_open311 import FORM, client, intake  # noqa: F401 (the fixture)
from tests.support import grant

pytestmark = pytest.mark.integration

PHONE = "13900001001"


async def _post(http, **fields) -> str:
    posted = await http.post("/open311/v2/requests.json", data={**FORM, "api_key": "o311-portal", **fields})
    assert posted.status_code == 201, posted.text
    return posted.json()[0]["service_request_id"]


def _comment(case_no: str, **fields) -> dict:
    return {"api_key": "o311-portal", "service_request_id": case_no, "update_id": "u-1", "description": "还没修",
            **fields}


async def test_a_comment_reaches_only_a_case_of_this_street_that_is_public(intake, isolated):
    jurisdiction = load_street(isolated.street_dir).code  # the one jurisdiction_id answered
    async with client(intake) as http:
        case_no = await _post(http)
        held = await _post(http, lat="", long="", address_string="某个不存在的地方")
        url = "/open311/v2/servicerequestupdates.xml"
        elsewhere = await http.post(url, data=_comment(case_no, jurisdiction_id="beijing-dongcheng"))
        unknown = await http.post(url, data=_comment("19990101-0001"))
        not_public = await http.post(url, data=_comment(held))
        injected = await http.post(url, data=_comment("' OR 1=1 --"))
        owner = await http.post(url, data={**_comment(case_no), "api_key": "o311-owner"})
        nobody = await http.post(url, data={k: v for k, v in _comment(case_no).items() if k != "api_key"})
        ours = await http.post(url, data=_comment(case_no, jurisdiction_id=jurisdiction))
    assert elsewhere.status_code == 404 and b"<errors>" in elsewhere.content and b"jurisdiction_id" in elsewhere.content
    assert unknown.status_code == 404 and not_public.status_code == 404 and injected.status_code == 404
    assert owner.status_code == 403 and nobody.status_code == 403
    assert ours.status_code == 201, ours.text
    count = await intake.runtime.pool.fetchval("SELECT count(*) FROM case_comments")
    assert count == 1  # only the comment to this street's public case was recorded


async def test_the_updates_feed_carries_no_personal_data(intake, isolated):
    await grant(isolated, intake, token="o311-operator", name="值班员", role="operator")
    since = now() - timedelta(seconds=5)
    async with client(intake) as http:
        case_no = await _post(http)  # FORM carries 李先生 and 13900001001
        junk = await _post(http, lat="", long="", address_string="不知道哪里")
        rejected = await http.post(f"/api/v1/cases/{junk}/reject", json={"reason": f"无法核实，请拨{PHONE}"},
                                   headers={"Authorization": "Bearer o311-operator"})
        assert rejected.status_code == 200
        commented = await http.post("/open311/v2/servicerequestupdates.json", data=_comment(
            case_no, description=f"请回电{PHONE}", first_name="王", last_name="小明", email="wang@example.org",
            phone="13800002002"))
        assert commented.status_code == 201, commented.text

        async def feed() -> str:
            while True:
                answer = await http.get("/open311/v2/servicerequestupdates.json",
                                        params={"start_date": since.isoformat(), "end_date": (now() + timedelta(
                                            minutes=1)).isoformat()})
                codes = {(u["service_request_id"], u["external_status_code"]) for u in answer.json()}
                if {(junk, "rejected"), (case_no, "accepted")} <= codes and "居民留言" in answer.text:
                    return answer.text
                await asyncio.sleep(0.2)
        text = await asyncio.wait_for(feed(), 30)
    assert "139****1001" in text  # the numbers typed into the reason and the comment, masked
    for secret in (PHONE, "13800002002", "李", "先生", "王", "小明", "wang@example.org"):
        assert secret not in text, secret

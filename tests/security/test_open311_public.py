"""Open311's public reads and its POST, attacked: a phone typed into a report, held reports (never public) and
rejected ones (only that and why), a body that is not UTF-8."""
from __future__ import annotations

from xml.etree import ElementTree

import pytest

from tests.integration.test_open311 import FORM, client, intake  # noqa: F401 (the fixture)
from tests.support import grant

pytestmark = pytest.mark.integration

PHONE = "13900001001"
ADDRESS = f"文化路12号东门，有事打{PHONE}"


async def _post(http, **fields) -> str:
    posted = await http.post("/open311/v2/requests.json", data={**FORM, "api_key": "o311-portal", **fields})
    assert posted.status_code == 201, posted.text
    return posted.json()[0]["service_request_id"]


async def test_a_phone_typed_into_the_address_or_description_is_never_read_back(intake):
    async with client(intake) as http:
        case_no = await _post(http, address_string=ADDRESS, description=f"垃圾箱损坏，请回电 139 0000 1001 或{PHONE}")
        answers = [await http.get(f"/open311/v2/requests/{case_no}.json"),
                   await http.get(f"/open311/v2/requests/{case_no}.xml"),
                   await http.get("/open311/v2/requests.json", params={"service_request_id": case_no}),
                   await http.get("/open311/v2/requests.xml")]
    assert all(a.status_code == 200 for a in answers)
    assert all(PHONE not in a.text and "139 0000 1001" not in a.text for a in answers)
    [one] = answers[0].json()
    assert one["address"] == "文化路12号东门，有事打139****1001"
    assert "139****1001" in one["description"]
    assert ElementTree.fromstring(answers[1].content).find("request/address").text == one["address"]


async def test_held_reports_are_not_public_and_rejected_ones_say_only_why(intake, isolated):
    # A rejected report (不予立案) is listed closed with its reason, as servicerequestupdates tells it (issue 19):
    # what its sender typed, the place and the photo stay unpublished. A held one is not public at all.
    await grant(isolated, intake, token="o311-operator", name="值班员", role="operator")
    async with client(intake) as http:
        # No place the street knows: held (地址待核实), awaiting the command center.
        held = await _post(http, lat="", long="", address_string="某个不存在的地方", description="held 的内容")
        rejected = await _post(http, lat="", long="", address_string=f"另一个不存在的地方{PHONE}",
                               description="rejected 的内容")
        accepted = await _post(http)
        states = dict(await intake.runtime.pool.fetch("SELECT case_no, state FROM reports WHERE case_no = ANY($1)",
                                                      [held, rejected, accepted]))
        assert states[held] == "reported"
        refused = await http.post(f"/api/v1/cases/{rejected}/reject", json={"reason": f"不属于本街道，请拨{PHONE}"},
                                  headers={"Authorization": "Bearer o311-operator"})
        assert refused.status_code == 200, refused.text

        listed = await http.get("/open311/v2/requests.json")
        by_id = await http.get("/open311/v2/requests.json", params={"service_request_id": f"{held},{rejected},{accepted}"})
        closed = await http.get("/open311/v2/requests.json", params={"status": "closed"})
        one_held = await http.get(f"/open311/v2/requests/{held}.json")
        one_rejected = await http.get(f"/open311/v2/requests/{rejected}.xml")
    ids = lambda answer: {r["service_request_id"] for r in answer.json()}  # noqa: E731
    assert {accepted, rejected} <= ids(listed) and held not in ids(listed)
    assert ids(by_id) == {accepted, rejected} and rejected in ids(closed) and held not in ids(closed)
    assert one_held.status_code == 404 and one_held.json()[0]["code"] == 404
    assert one_rejected.status_code == 200
    node = ElementTree.fromstring(one_rejected.content).find("request")
    assert node.findtext("status") == "closed"
    assert node.findtext("status_notes") == "不予立案（问题未处理）：不属于本街道，请拨139****1001"
    [read] = [r for r in by_id.json() if r["service_request_id"] == rejected]
    assert (read["lat"], read["long"], read["address"], read["media_url"]) == (None, None, None, None)
    for answer in (listed, by_id, closed, one_rejected):
        assert "held 的内容" not in answer.text and "rejected 的内容" not in answer.text and PHONE not in answer.text
        assert "另一个不存在的地方" not in answer.text


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", None])
async def test_a_post_that_is_not_utf8_gets_an_open311_400(intake, content_type):
    body = "service_code=CM04&api_key=o311-portal&lat=34.871845&long=117.575168&description=".encode() + \
        "垃圾箱损坏".encode("gbk")
    headers = {"Content-Type": content_type} if content_type else {}
    async with client(intake) as http:
        as_json = await http.post("/open311/v2/requests.json", content=body, headers=headers)
        as_xml = await http.post("/open311/v2/requests.xml", content=body, headers=headers)
        count = await intake.runtime.pool.fetchval("SELECT count(*) FROM reports")
    assert as_json.status_code == 400, as_json.text
    [error] = as_json.json()
    assert error["code"] == 400 and "UTF-8" in error["description"]
    assert as_xml.status_code == 400 and as_xml.headers["content-type"].startswith("application/xml")
    root = ElementTree.fromstring(as_xml.content)
    assert root.tag == "errors" and root.find("error/code").text == "400"
    assert count == 0

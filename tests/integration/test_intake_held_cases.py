"""The command center's hands on held reports, on the real broker and database: classify, locate, reject, merge."""
from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from services.intake.bootstrap import build
from tests.support import TopicReader, grant, running

pytestmark = pytest.mark.integration

OPERATOR = "test-operator"
ADMIN = "test-admin"
TERMINAL = "test-terminal"
INSIDE = {"lon": 117.575168, "lat": 34.871845}  # unit grid 3704020010010201
OTHER_GRID = "3704020010010102"
UNKNOWN_ADDRESS = "不存在小区99号楼"


async def within(awaitable: Any, seconds: float = 15) -> Any:
    return await asyncio.wait_for(awaitable, seconds)


@pytest.fixture
async def intake(isolated):
    async with running(build(isolated, manage_runtime=False)) as service:
        await within(asyncio.gather(
            grant(isolated, service, token=OPERATOR, name="值班员甲", role="operator"),
            grant(isolated, service, token=ADMIN, name="管理员", role="admin"),
            grant(isolated, service, token=TERMINAL, name="网格员001终端", role="terminal",
                  worker_id="W001", device_id="SZT-0001"),
        ), 60)
        yield service


@pytest.fixture
async def http(intake):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=intake.app), base_url="http://intake",
                                 headers={"Authorization": f"Bearer {OPERATOR}"}, timeout=10) as client:
        yield client


@pytest.fixture
async def cases(intake, isolated):
    async with TopicReader(isolated.kafka_bootstrap, intake.runtime.topics.cases) as reader:
        yield reader


async def post(http: httpx.AsyncClient, path: str, body: Any = None, token: str | None = OPERATOR,
               **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {"Authorization": ""}
    return await within(http.post(path, json=body, headers=headers, **kwargs))


async def report(http: httpx.AsyncClient, *, category: str | None = None, location: dict | None = None,
                 address: str | None = UNKNOWN_ADDRESS) -> dict:
    """A web report through the operator's desk; returns its receipt."""
    body = {"source": "web", "external_id": f"web-{uuid.uuid4().hex[:8]}", "category": category,
            "description": "路灯不亮", "location": location, "address": address,
            "reporter": {"name": "赵女士", "phone": "13700001234"}, "coordinator": None,
            "media": ["http://photos.example/1.jpg"], "observed_at": "2026-11-27T19:00:00+08:00"}
    response = await post(http, "/api/v1/reports", body)
    assert response.status_code == 201, response.text
    return response.json()


async def held_report(http: httpx.AsyncClient, **fields: Any) -> dict:
    receipt = await report(http, **fields)
    assert receipt["state"] == "reported", receipt
    return receipt


def of_case(case_id: str, *types: str):
    return lambda m: m.get("case_id") == case_id and m.get("type") in types


async def row(intake, case_no: str):
    return await within(intake.runtime.pool.fetchrow("SELECT * FROM reports WHERE case_no = $1", case_no))


async def test_classified_then_located_a_held_report_is_accepted_with_its_events_in_order(intake, http, cases):
    case = await held_report(http)
    assert case["unit_grid"] is None and case["category"] is None

    classified = await post(http, f"/api/v1/cases/{case['case_no']}/classify", {"category": "CM04"})
    assert classified.status_code == 200, classified.text
    receipt = classified.json()
    assert receipt == {"case_id": case["case_id"], "case_no": case["case_no"], "state": "reported",
                       "unit_grid": None, "category": "CM04", "hold_reason": receipt["hold_reason"]}
    assert "地址待核实" in receipt["hold_reason"]

    located = await post(http, f"/api/v1/cases/{case['case_no']}/locate", {"location": INSIDE})
    assert located.status_code == 200, located.text
    assert located.json() == {"case_id": case["case_id"], "case_no": case["case_no"], "state": "accepted",
                              "unit_grid": "3704020010010201", "category": "CM04", "hold_reason": None}

    accepted = await cases.wait_for(of_case(case["case_id"], "case.accepted"))
    events = [m[2] for m in cases.seen if of_case(case["case_id"], "case.reported", "case.classified",
                                                  "case.located", "case.accepted")(m[2])]
    assert [e["type"] for e in events] == ["case.reported", "case.classified", "case.located", "case.accepted"]
    _, classified_event, located_event, _ = events
    assert all(e["_key"] == case["case_id"] and e["source"] == "intake" for e in events)
    assert classified_event["data"] == {"case_no": case["case_no"], "category": "CM04", "by": "operator:值班员甲"}
    assert located_event["data"] == {"case_no": case["case_no"], "unit_grid": "3704020010010201",
                                     "location": INSIDE, "address": UNKNOWN_ADDRESS, "by": "operator:值班员甲"}
    # The same fields as intake's own acceptance: routing dispatches it, supervision starts its clock.
    assert accepted["data"] == {"case_no": case["case_no"], "category": "CM04", "unit_grid": "3704020010010201",
                                "description": "路灯不亮", "location": INSIDE, "address": UNKNOWN_ADDRESS,
                                "media": ["http://photos.example/1.jpg"],
                                "resolved_on_the_spot": None}  # a held report is never one fixed on the spot
    assert accepted["occurred_at"].endswith("+08:00")

    stored = await row(intake, case["case_no"])
    assert stored["state"] == "accepted" and stored["hold_reason"] is None and stored["category"] == "CM04"
    assert (stored["lon"], stored["lat"]) == (INSIDE["lon"], INSIDE["lat"]) and stored["acted_by"] == "operator:值班员甲"

    # Accepted now: no longer the command center's to classify again.
    again = await post(http, f"/api/v1/cases/{case['case_no']}/classify", {"category": "CM05"})
    assert again.status_code == 409 and "accepted" in again.json()["detail"]


async def test_located_by_point_a_case_waits_for_its_category_then_classifying_accepts_it(intake, http, cases):
    case = await held_report(http)
    located = await post(http, f"/api/v1/cases/{case['case_no']}/locate", {"location": INSIDE})
    assert located.status_code == 200, located.text
    assert located.json()["state"] == "reported" and located.json()["unit_grid"] == "3704020010010201"
    assert "待分类" in located.json()["hold_reason"]
    classified = await post(http, f"/api/v1/cases/{case['case_no']}/classify", {"category": "CM04"})
    assert classified.status_code == 200 and classified.json()["state"] == "accepted"

    accepted = await cases.wait_for(of_case(case["case_id"], "case.accepted"))
    assert accepted["data"]["unit_grid"] == "3704020010010201" and accepted["data"]["location"] == INSIDE
    types = [m[2]["type"] for m in cases.seen if m[2].get("case_id") == case["case_id"]]
    assert types == ["case.reported", "case.located", "case.classified", "case.accepted"]


async def test_located_by_unit_grid_a_case_keeps_its_address_and_no_point(intake, http, cases):
    case = await held_report(http, category="CM04")
    located = await post(http, f"/api/v1/cases/{case['case_no']}/locate", {"unit_grid": OTHER_GRID})
    assert located.status_code == 200, located.text
    assert located.json() == {"case_id": case["case_id"], "case_no": case["case_no"], "state": "accepted",
                              "unit_grid": OTHER_GRID, "category": "CM04", "hold_reason": None}
    located_event = await cases.wait_for(of_case(case["case_id"], "case.located"))
    assert located_event["data"] == {"case_no": case["case_no"], "unit_grid": OTHER_GRID, "location": None,
                                     "address": UNKNOWN_ADDRESS, "by": "operator:值班员甲"}
    accepted = await cases.wait_for(of_case(case["case_id"], "case.accepted"))
    assert accepted["data"]["unit_grid"] == OTHER_GRID and accepted["data"]["category"] == "CM04"
    assert accepted["data"]["location"] is None and accepted["data"]["address"] == UNKNOWN_ADDRESS
    stored = await row(intake, case["case_no"])
    assert stored["state"] == "accepted" and stored["lon"] is None and stored["address"] == UNKNOWN_ADDRESS


async def test_a_rejected_report_is_told_why_and_cannot_be_acted_on_again(intake, http, cases):
    case = await held_report(http)
    rejected = await post(http, f"/api/v1/cases/{case['case_no']}/reject", {"reason": "  不属于本街道辖区，已转交相关街道  "})
    assert rejected.status_code == 200, rejected.text
    assert rejected.json() == {"case_id": case["case_id"], "case_no": case["case_no"], "state": "rejected",
                               "unit_grid": None, "category": None, "hold_reason": None}
    event = await cases.wait_for(of_case(case["case_id"], "case.rejected"))
    assert event["data"] == {"case_no": case["case_no"], "reason": "不属于本街道辖区，已转交相关街道",
                             "by": "operator:值班员甲"}
    stored = await row(intake, case["case_no"])
    assert stored["state"] == "rejected" and stored["reject_reason"] == "不属于本街道辖区，已转交相关街道"

    for action, body in (("reject", {"reason": "again"}), ("classify", {"category": "CM04"}),
                         ("locate", {"unit_grid": OTHER_GRID})):
        refused = await post(http, f"/api/v1/cases/{case['case_no']}/{action}", body)
        assert refused.status_code == 409 and "rejected" in refused.json()["detail"], (action, refused.text)
    later = await cases.all_within(1.0, of_case(case["case_id"], "case.rejected", "case.classified", "case.located"))
    assert [e["type"] for e in later] == ["case.rejected"]


async def test_a_duplicate_is_merged_into_an_open_case(intake, http, cases):
    open_case = await report(http, category="CM04", location=INSIDE, address=None)
    assert open_case["state"] == "accepted"
    duplicate = await held_report(http)
    merged = await post(http, f"/api/v1/cases/{duplicate['case_no']}/merge", {"into": open_case["case_no"]},
                        token=ADMIN)
    assert merged.status_code == 200, merged.text
    assert merged.json()["state"] == "merged" and merged.json()["case_no"] == duplicate["case_no"]
    event = await cases.wait_for(of_case(duplicate["case_id"], "case.merged"))
    assert event["data"] == {"case_no": duplicate["case_no"], "into_case_id": open_case["case_id"],
                             "into_case_no": open_case["case_no"], "by": "admin:管理员"}
    stored = await row(intake, duplicate["case_no"])
    assert stored["state"] == "merged" and str(stored["merged_into"]) == open_case["case_id"]

    other = await held_report(http)
    held_target = await held_report(http)
    refusals = [
        (duplicate["case_no"], open_case["case_no"], 409, "merged"),       # already merged
        (open_case["case_no"], other["case_no"], 409, "accepted"),         # an accepted case is not held
        (other["case_no"], duplicate["case_no"], 409, "merged"),           # the target must be open
        (other["case_no"], held_target["case_no"], 409, "reported"),       # … not itself held
        (other["case_no"], other["case_no"], 422, "itself"),
        (other["case_no"], "20991231-0001", 422, "20991231-0001"),         # no such case
        ("20991231-0002", open_case["case_no"], 404, "20991231-0002"),
    ]
    for case_no, into, status, words in refusals:
        refused = await post(http, f"/api/v1/cases/{case_no}/merge", {"into": into})
        assert refused.status_code == status and words in refused.json()["detail"], (case_no, into, refused.text)
    assert (await row(intake, other["case_no"]))["state"] == "reported"
    merges = await cases.all_within(1.0, lambda m: m.get("type") == "case.merged")
    assert len(merges) == 1


async def test_two_operators_acting_at_once_on_one_case_one_wins_the_other_is_told(intake, http, cases):
    case = await held_report(http)
    target = await report(http, category="CM04", location=INSIDE, address=None)
    path = f"/api/v1/cases/{case['case_no']}"
    first, second = await within(asyncio.gather(
        post(http, f"{path}/reject", {"reason": "重复举报"}),
        post(http, f"{path}/merge", {"into": target["case_no"]}),
    ))
    statuses = sorted([first.status_code, second.status_code])
    assert statuses == [200, 409], (first.text, second.text)
    loser = first if first.status_code == 409 else second
    winner_state = (second if loser is first else first).json()["state"]
    assert winner_state in loser.json()["detail"]
    decided = await cases.all_within(1.5, of_case(case["case_id"], "case.rejected", "case.merged"))
    assert len(decided) == 1
    assert (await row(intake, case["case_no"]))["state"] == winner_state


async def test_refusals_say_why_and_change_nothing(intake, http, cases):
    case = await held_report(http)
    path = f"/api/v1/cases/{case['case_no']}"

    anonymous = await post(http, f"{path}/classify", {"category": "CM04"}, token=None)
    assert anonymous.status_code == 401 and "Bearer" in anonymous.json()["detail"]
    unknown_token = await post(http, f"{path}/classify", {"category": "CM04"}, token="no-such-token")
    assert unknown_token.status_code == 401
    for action, body in (("classify", {"category": "CM04"}), ("locate", {"unit_grid": OTHER_GRID}),
                         ("reject", {"reason": "x"}), ("merge", {"into": case["case_no"]})):
        terminal = await post(http, f"{path}/{action}", body, token=TERMINAL)
        assert terminal.status_code == 403 and "operator" in terminal.json()["detail"], (action, terminal.text)
        missing = await post(http, f"/api/v1/cases/20991231-0001/{action}", body)
        assert missing.status_code == 404 and "20991231-0001" in missing.json()["detail"], (action, missing.text)

    invalid = [
        ("classify", {"category": "XX99"}, "unknown category"),
        ("classify", {}, "category"),
        ("classify", {"category": ""}, "category"),
        ("locate", {"location": {"lon": 116.4, "lat": 39.9}}, "outside the street"),
        ("locate", {"unit_grid": "370402001001"}, "unknown unit grid"),   # a community, not a unit grid
        ("locate", {"unit_grid": "nowhere"}, "unknown unit grid"),
        ("locate", {"location": INSIDE, "unit_grid": OTHER_GRID}, "exactly one"),
        ("locate", {}, "exactly one"),
        ("locate", {"location": None, "unit_grid": None}, "exactly one"),
        ("locate", {"location": {"lon": 117.5}}, "lat"),
        ("locate", {"address": "文化路"}, "address"),
        ("reject", {"reason": ""}, "reason"),
        ("reject", {"reason": "   "}, "reason"),
        ("reject", {"reason": "长" * 501}, "reason"),
        ("merge", {}, "into"),
    ]
    for action, body, words in invalid:
        refused = await post(http, f"{path}/{action}", body)
        assert refused.status_code == 422 and words in refused.json()["detail"], (action, body, refused.text)
    not_json = await within(http.post(f"{path}/classify", content=b"{oops", headers={"Content-Type": "application/json"}))
    assert not_json.status_code == 422

    stored = await row(intake, case["case_no"])
    assert stored["state"] == "reported" and stored["category"] is None and stored["unit_grid"] is None
    assert stored["acted_by"] is None
    acted = await cases.all_within(1.0, lambda m: m.get("case_id") == case["case_id"] and m["type"] != "case.reported")
    assert acted == []

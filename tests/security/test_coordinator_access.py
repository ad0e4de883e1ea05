"""Attacks on the coordinator's doors and the community staff's reports (issue 16): a coordinator checking a case
of another grid, reading another coordinator's reports, 自行处置 by anyone but a coordinator, a community's staff
reading another community's figures. Each tries to cross the line and fails; nothing changes."""
from __future__ import annotations

import uuid

import httpx
import pytest

from shared.contracts.envelope import Envelope
from shared.contracts.reports import ReportSubmitted
from shared.topics import Topics, ensure_topics
from tests.e2e.conftest import TERMINAL_TOKEN, mail_sink, sms_gateway, street  # noqa: F401 (the fixtures)
from tests.e2e.test_coordinator_loop import case_in_state, client, terminal_report
from tests.support import TopicReader, grant, publish

pytestmark = pytest.mark.integration

# 供销社宿舍 (the access matrix's point): unit grid 3704020010010201, W004's — not W001's.
IN_W004_GRID = {"lon": 117.575168, "lat": 34.871845}
W004_TOKEN = "sec-w004"


async def _resolved_case(street, terminal: httpx.AsyncClient, owner: httpx.AsyncClient,
                         operator: httpx.AsyncClient, where: dict) -> str:
    made = await terminal.post("/api/v1/reports", json=terminal_report(location=where))
    assert made.status_code == 201, made.text
    case_no = made.json()["case_no"]
    await case_in_state(operator, case_no, "dispatched")
    for update in ({"type": "task.accepted"}, {"type": "task.resolved", "result": "已处理", "media": []}):
        assert (await owner.post(f"/api/v1/tasks/{case_no}/updates", json=update)).status_code == 200
    return case_no


async def _people(street) -> None:
    services = (street.intake, street.routing, street.supervision, street.notify)
    await ensure_topics(street.settings.kafka_bootstrap, [Topics(street.settings.topic_prefix).for_owner("huanwei")])
    await grant(street.settings, *services, token="sec-op", name="值班员", role="operator")
    await grant(street.settings, *services, token="sec-hotline", name="12345", role="hotline")
    await grant(street.settings, *services, token="sec-huanwei", name="环卫所", role="owner", owner_code="huanwei")
    await grant(street.settings, *services, token=W004_TOKEN, name="网格员004终端", role="terminal",
                worker_id="W004", device_id="SZT-0004")
    await grant(street.settings, *services, token="sec-stranger", name="外来终端", role="terminal",
                worker_id="X999", device_id="SZT-9999")


async def test_a_coordinator_cannot_check_a_case_of_another_grid(street):
    await _people(street)
    s = street.supervision
    async with client(street.intake, TERMINAL_TOKEN) as w001_intake, client(s, TERMINAL_TOKEN) as w001, \
            client(s, "sec-stranger") as stranger, client(s, "sec-op") as operator, \
            client(s, "sec-huanwei") as owner, client(s, W004_TOKEN) as w004:
        # W001 reports in W004's grid (coordinators may report anywhere); W001 may not check it there.
        case_no = await _resolved_case(street, w001_intake, owner, operator, IN_W004_GRID)
        for attacker, body in ((w001, {"passed": True}), (w001, {"passed": False, "note": "不合格"}),
                               (stranger, {"passed": True})):
            refused = await attacker.post(f"/api/v1/cases/{case_no}/check", json=body)
            assert refused.status_code == 403, refused.text
            assert "网格" in refused.json()["detail"]
        assert case_no not in [c["case_no"] for c in (await w001.get("/api/v1/coordinator/checks")).json()["checks"]]
        view = await case_in_state(operator, case_no, "resolved")  # untouched
        assert not [h for h in view["history"] if h["type"] in ("case.closed", "case.reworked")]
        # The coordinator of that grid may.
        assert case_no in [c["case_no"] for c in (await w004.get("/api/v1/coordinator/checks")).json()["checks"]]
        passed = await w004.post(f"/api/v1/cases/{case_no}/check", json={"passed": True})
        assert passed.status_code == 200 and passed.json()["state"] == "closed"
        # An owner is no checker at all.
        assert (await owner.post(f"/api/v1/cases/{case_no}/check", json={"passed": True})).status_code == 403


async def test_a_coordinator_sees_only_their_own_reports(street):
    await _people(street)
    s = street.supervision
    async with client(street.intake, W004_TOKEN) as w004_intake, client(street.intake, TERMINAL_TOKEN) as w001_intake, \
            client(s, TERMINAL_TOKEN) as w001, client(s, W004_TOKEN) as w004, client(s, "sec-op") as operator:
        theirs = []
        for _ in range(3):
            made = await w004_intake.post("/api/v1/reports", json=terminal_report(location=IN_W004_GRID))
            assert made.status_code == 201, made.text
            theirs.append(made.json()["case_no"])
        # Even a body claiming to be W004 is W001's report: the credential says who reported.
        claimed = terminal_report(coordinator={"worker_id": "W004", "device_id": "SZT-0004"})
        own = (await w001_intake.post("/api/v1/reports", json=claimed)).json()["case_no"]
        for case_no in (*theirs, own):
            await case_in_state(operator, case_no, "dispatched")

        listed = [r["case_no"] for r in (await w001.get("/api/v1/coordinator/reports")).json()["reports"]]
        assert listed == [own]
        # W004 reads theirs in pages, newest first, to the end.
        pages, cursor = [], None
        while True:
            page = (await w004.get("/api/v1/coordinator/reports",
                                   params={"limit": 2, **({"cursor": cursor} if cursor else {})})).json()
            pages.append([r["case_no"] for r in page["reports"]])
            cursor = page["next"]
            if cursor is None:
                break
            # W004's cursor in W001's hands reads nothing of W004's.
            stolen = await w001.get("/api/v1/coordinator/reports", params={"cursor": cursor})
            assert stolen.status_code == 400 and theirs[0] not in stolen.text
        assert sorted(sum(pages, [])) == sorted(theirs) and len(pages) == 2
        for garbage in ("x", "eyJ2IjoxfQ", "%00"):
            assert (await w004.get("/api/v1/coordinator/reports", params={"cursor": garbage})).status_code == 400


async def test_only_a_coordinator_may_report_a_problem_fixed_on_the_spot(street):
    await _people(street)
    topics = Topics(street.settings.topic_prefix)
    spot = {"result": "已处理", "media": []}
    async with client(street.intake, "sec-hotline") as hotline, client(street.intake, "sec-op") as operator, \
            client(street.intake, "sec-huanwei") as owner, client(street.intake, TERMINAL_TOKEN) as w001:
        for who, source in ((hotline, "hotline"), (operator, "web"), (operator, "hotline")):
            answer = await who.post("/api/v1/reports", json=terminal_report(source=source, resolved_on_the_spot=spot))
            assert answer.status_code in (403, 422), answer.text
            assert "自行处置" in answer.text
        assert (await owner.post("/api/v1/reports", json=terminal_report(resolved_on_the_spot=spot))).status_code == 403
        # A coordinator's fix needs its category and place: nobody is left to classify a closed case.
        held = await w001.post("/api/v1/reports", json=terminal_report(category=None, resolved_on_the_spot=spot))
        assert held.status_code == 422 and "自行处置" in held.json()["detail"]
        blank = await w001.post("/api/v1/reports", json=terminal_report(resolved_on_the_spot={"result": "  "}))
        assert blank.status_code == 422

        # On Kafka: a hotline's message claiming a fix on the spot goes to the rejected topic with the reason,
        # and so does a terminal's without its coordinator.
        async with TopicReader(street.settings.kafka_bootstrap, topics.reports_rejected) as rejected:
            for source, coordinator in (("hotline", None), ("terminal", None)):
                external_id = f"sec-spot-{uuid.uuid4().hex[:8]}"
                data = {**terminal_report(source=source, external_id=external_id, coordinator=coordinator),
                        "resolved_on_the_spot": spot}
                envelope = Envelope.new(ReportSubmitted.TYPE, 1, data, source=source)  # as a producer would
                await publish(street.settings.kafka_bootstrap, topics.reports, envelope, key=external_id)
                found = await rejected.wait_for(lambda m: external_id in str(m.get("data", {}).get("original")),
                                                timeout=20)
                assert "resolved_on_the_spot" in found["data"]["reason"] or "自行处置" in found["data"]["reason"]
        # No case was made of any of them.
        count = await street.intake.runtime.pool.fetchval(
            "SELECT count(*) FROM reports WHERE external_id LIKE 'sec-spot-%'")
        assert count == 0


async def test_a_community_reads_its_own_reports_only(street):
    await _people(street)
    s = street.supervision
    await grant(street.settings, s, token="sec-c1", name="龙头社区", role="owner", owner_code="370402001001")
    async with client(s, "sec-c1") as community, client(s, "sec-huanwei") as department:
        own = await community.get("/api/v1/reports/weekly", params={"community": "370402001001", "week": "2026-W48"})
        assert own.status_code == 200 and own.json()["community"] == "370402001001"
        other = await community.get("/api/v1/reports/weekly", params={"community": "370402001002", "week": "2026-W48"})
        assert other.status_code == 403 and "本社区" in other.json()["detail"]
        csv = await community.get("/api/v1/reports/weekly",
                                  params={"community": "370402001002", "week": "2026-W48", "format": "csv"})
        assert csv.status_code == 403
        pdf = await community.get("/api/v1/reports/weekly.pdf", params={"community": "370402001002", "week": "2026-W48"})
        assert pdf.status_code == 403

        mine = await community.get("/api/v1/reports/assessment", params={"month": "2026-11"})
        assert mine.status_code == 200
        rows = mine.json()["rows"]
        assert rows and {r["community"] for r in rows} == {"370402001001"}
        assert (await community.get("/api/v1/reports/assessment",
                                    params={"month": "2026-11", "community": "370402001002"})).status_code == 403

        ranking = (await community.get("/api/v1/reports/ranking", params={"month": "2026-11"})).json()
        assert [r["key"] for r in ranking["communities"]] == ["370402001001"] and ranking["departments"] == []

        for path, params in (("/api/v1/reports/weekly", {"community": "370402001001", "week": "2026-W48"}),
                             ("/api/v1/reports/assessment", {"month": "2026-11"}),
                             ("/api/v1/reports/ranking", {"month": "2026-11"})):
            assert (await department.get(path, params=params)).status_code == 403, path
        # Other figures stay the command center's.
        assert (await community.get("/api/v1/stats", params={"from": "2026-11-01", "to": "2026-11-30"})).status_code == 403
        assert (await community.get("/api/v1/reports/year", params={"year": 2026})).status_code == 403

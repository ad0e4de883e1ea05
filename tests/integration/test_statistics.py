"""The street's figures (GET /api/v1/stats and /api/v1/reports/*) from a hand-built history of seven cases,
every number checked against one computed by hand below (docs/STATISTICS.md has the definitions).

The days (street time, +08:00; all work days): D0 = Tue 2026-11-24, D1 = Wed 11-25, D2 = Thu 11-26; work
periods 08:30–12:00 and 13:30–17:30. Grids: G1 = 3704020010010101 (coordinator W001) and G2 = …0102 (W002)
in community C1 = 370402001001 (龙头社区); G3 = 3704020010020101 (W013) in C2 = 370402001002 (南龙头社区), which
is also an owner (K2: the community handles its disputes).

  A  G1 W001 CM04 → huanwei. D1 09:00 reported, 09:10 accepted, 09:20 dispatched (due 14:50), 10:00 signed
     (40 min: in time), 11:00 resolved, 11:30 closed on time (dispatched: not fixed on the spot).
     D2 10:00 survey s-A satisfied.
  B  G1 W001 CM01 → chengguan. D1 09:30 reported, 09:40 accepted, 10:00 dispatched (due 15:30), 14:00 signed
     (10:00–12:00 + 13:30–14:00 = 2.5 work hours: late), 15:00 resolved, 16:00 reworked, 16:05 dispatched
     again (rework, due D2 11:05); D2 09:00 signed, 10:00 resolved, 10:30 closed on time; survey s-B1 answered
     twice (D2 11:00 satisfied, 11:30 basically satisfied: counted once, satisfied).
  C  G2 W002 CM04. D1 10:00 reported, 10:10 accepted, 10:20 dispatched to chengguan (due 15:50), 10:50
     returned by chengguan, 11:00 dispatched by hand to huanwei (due 16:30), 11:30 signed, 14:30 extension
     approved to D2 16:30; D2 16:00 resolved, 16:20 closed on time.
  D  G3 hotline MD01 → K2. D1 13:40 reported, 13:50 accepted, 14:00 dispatched (1 work day: due D2 14:00),
     14:30 signed; D2 14:05 overdue. Still in progress: overdue now.
  E  G3 W013 MD01 → K2. D1 08:40 reported, 08:50 accepted, 09:00 dispatched (due 14:30), 09:30 signed,
     11:00 resolved, 15:00 closed on time. D2 09:00 reopened (survey s-E) and the
     resident's unsatisfied answer s-E, 09:10 dispatched again (reopen, due 14:40), 09:20 signed, 10:00
     resolved, 10:30 closed on time, 11:00 survey s-E2 satisfied.
  F  G2 W002 CM04 → huanwei. D0 15:00 reported, 15:10 accepted, 15:20 dispatched (due D1 10:20), 16:00 signed,
     17:00 resolved; D1 09:00 closed on time; D2 15:00 survey s-F unsatisfied, outside the window.
  G  hotline, no place, no category. D2 10:00 reported, 10:30 rejected.

Supervision's deadline poller is held off (an hour between polls), so every event is one of the test's.
E's reopening is published before its unsatisfied answer: supervision, finding the case reopened already,
does not reopen it again.
"""
from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from services.supervision.bootstrap import build
from shared.contracts import Envelope
from shared.contracts import cases as c
from shared.contracts.common import Coordinator, TimeLimit
from shared.contracts.registry import EventModel
from tests.supervision_cases import send
from tests.support import eventually, grant, running

pytestmark = pytest.mark.integration

CST = timezone(timedelta(hours=8))
G1, G2, G3 = "3704020010010101", "3704020010010102", "3704020010020101"
C1, C2 = "370402001001", "370402001002"
K2 = C2
FOUR_HOURS = TimeLimit(value=4, unit="work_hours")
ONE_DAY = TimeLimit(value=1, unit="work_days")


def at(day: int, hhmm: str) -> datetime:
    """D<day> at hh:mm street time (D0 = 2026-11-24)."""
    hours, minutes = map(int, hhmm.split(":"))
    return datetime(2026, 11, 24 + day, hours, minutes, tzinfo=CST)


class History:
    """The hand-built events, in publishing order."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    def add(self, case: str, when: datetime, event: EventModel, source: str = "intake") -> None:
        self.envelopes.append(event.envelope(source=source, case_id=f"stats-{case}", occurred_at=when))

    def reported(self, case: str, when: datetime, *, grid: str | None, category: str | None,
                 worker: str | None) -> None:
        coordinator = Coordinator(worker_id=worker, device_id=f"SZT-{worker[1:]}") if worker else None
        self.add(case, when, c.CaseReported(
            case_no=NO[case], source="terminal" if worker else "hotline", external_id=f"ext-{case}",
            category=category, description="测试案件", observed_at=when, unit_grid=grid, coordinator=coordinator))

    def accepted(self, case: str, when: datetime, grid: str, category: str) -> None:
        self.add(case, when, c.CaseAccepted(case_no=NO[case], category=category, unit_grid=grid, description="测试案件"))

    def dispatched(self, case: str, when: datetime, owner: str, grid: str, category: str, due: datetime,
                   occasion: str = "first", limit: TimeLimit = FOUR_HOURS) -> None:
        self.add(case, when, c.CaseDispatched(
            case_no=NO[case], owner=owner, category=category, unit_grid=grid, priority="normal", time_limit=limit,
            dispatched_at=when, due_at=due, occasion=occasion), source="routing")

    def owner_did(self, case: str, when: datetime, event: EventModel) -> None:
        self.add(case, when, event, source="supervision")


NO = {k: f"20261125-{i:04d}" for i, k in enumerate("ABCDEFG", 1)}


def history() -> History:
    h = History()
    u = lambda case: f"u-{case}-{len(h.envelopes)}"  # noqa: E731 — an update id per owner's event
    # A
    h.reported("A", at(1, "09:00"), grid=G1, category="CM04", worker="W001")
    h.accepted("A", at(1, "09:10"), G1, "CM04")
    h.dispatched("A", at(1, "09:20"), "huanwei", G1, "CM04", due=at(1, "14:50"))
    h.owner_did("A", at(1, "10:00"), c.CaseSigned(case_no=NO["A"], owner="huanwei", update_id=u("A")))
    h.owner_did("A", at(1, "11:00"), c.CaseResolved(case_no=NO["A"], owner="huanwei", result="已更换", update_id=u("A")))
    h.owner_did("A", at(1, "11:30"), c.CaseClosed(case_no=NO["A"], owner="huanwei", outcome="resolved", result="已更换",
                                                  by="operator:值班员", closed_at=at(1, "11:30"), on_time=True))
    h.add("A", at(2, "10:00"), c.CaseSurveyAnswered(case_no=NO["A"], survey_id="s-A", verdict="satisfied",
                                                    channel="sms", within_window=True), source="notify")
    # B
    h.reported("B", at(1, "09:30"), grid=G1, category="CM01", worker="W001")
    h.accepted("B", at(1, "09:40"), G1, "CM01")
    h.dispatched("B", at(1, "10:00"), "chengguan", G1, "CM01", due=at(1, "15:30"))
    h.owner_did("B", at(1, "14:00"), c.CaseSigned(case_no=NO["B"], owner="chengguan", update_id=u("B")))
    h.owner_did("B", at(1, "15:00"), c.CaseResolved(case_no=NO["B"], owner="chengguan", result="已清理", update_id=u("B")))
    h.owner_did("B", at(1, "16:00"), c.CaseReworked(case_no=NO["B"], owner="chengguan", note="仍有残留",
                                                    by="operator:值班员"))
    h.dispatched("B", at(1, "16:05"), "chengguan", G1, "CM01", due=at(2, "11:05"), occasion="rework")
    h.owner_did("B", at(2, "09:00"), c.CaseSigned(case_no=NO["B"], owner="chengguan", update_id=u("B")))
    h.owner_did("B", at(2, "10:00"), c.CaseResolved(case_no=NO["B"], owner="chengguan", result="已清理", update_id=u("B")))
    h.owner_did("B", at(2, "10:30"), c.CaseClosed(case_no=NO["B"], owner="chengguan", outcome="resolved", result="已清理",
                                                  by="operator:值班员", closed_at=at(2, "10:30"), on_time=True))
    for when, verdict in (("11:00", "satisfied"), ("11:30", "basically_satisfied")):
        h.add("B", at(2, when), c.CaseSurveyAnswered(case_no=NO["B"], survey_id="s-B1", verdict=verdict, channel="web",
                                                     within_window=True), source="notify")
    # C
    h.reported("C", at(1, "10:00"), grid=G2, category="CM04", worker="W002")
    h.accepted("C", at(1, "10:10"), G2, "CM04")
    h.dispatched("C", at(1, "10:20"), "chengguan", G2, "CM04", due=at(1, "15:50"))
    h.owner_did("C", at(1, "10:50"), c.CaseReturned(case_no=NO["C"], owner="chengguan", reason="非本单位职责",
                                                    update_id=u("C")))
    h.dispatched("C", at(1, "11:00"), "huanwei", G2, "CM04", due=at(1, "16:30"), occasion="manual")
    h.owner_did("C", at(1, "11:30"), c.CaseSigned(case_no=NO["C"], owner="huanwei", update_id=u("C")))
    h.owner_did("C", at(1, "14:00"), c.CaseExtensionRequested(case_no=NO["C"], owner="huanwei", until=at(2, "16:30"),
                                                              reason="需调配车辆", update_id=u("C")))
    h.owner_did("C", at(1, "14:30"), c.CaseExtensionDecided(case_no=NO["C"], owner="huanwei", approved=True,
                                                            due_at=at(2, "16:30"), by="operator:值班员"))
    h.owner_did("C", at(2, "16:00"), c.CaseResolved(case_no=NO["C"], owner="huanwei", result="已更换", update_id=u("C")))
    h.owner_did("C", at(2, "16:20"), c.CaseClosed(case_no=NO["C"], owner="huanwei", outcome="resolved", result="已更换",
                                                  by="operator:值班员", closed_at=at(2, "16:20"), on_time=True))
    # D
    h.reported("D", at(1, "13:40"), grid=G3, category="MD01", worker=None)
    h.accepted("D", at(1, "13:50"), G3, "MD01")
    h.dispatched("D", at(1, "14:00"), K2, G3, "MD01", due=at(2, "14:00"), limit=ONE_DAY)
    h.owner_did("D", at(1, "14:30"), c.CaseSigned(case_no=NO["D"], owner=K2, update_id=u("D")))
    h.owner_did("D", at(2, "14:05"), c.CaseOverdue(case_no=NO["D"], owner=K2, due_at=at(2, "14:00")))
    # E
    h.reported("E", at(1, "08:40"), grid=G3, category="MD01", worker="W013")
    h.accepted("E", at(1, "08:50"), G3, "MD01")
    h.dispatched("E", at(1, "09:00"), K2, G3, "MD01", due=at(1, "14:30"))
    h.owner_did("E", at(1, "09:30"), c.CaseSigned(case_no=NO["E"], owner=K2, update_id=u("E")))
    h.owner_did("E", at(1, "11:00"), c.CaseResolved(case_no=NO["E"], owner=K2, result="已调解", update_id=u("E")))
    h.owner_did("E", at(1, "15:00"), c.CaseClosed(case_no=NO["E"], owner=K2, outcome="resolved", result="已调解",
                                                  by="operator:值班员", closed_at=at(1, "15:00"), on_time=True))
    h.owner_did("E", at(2, "09:00"), c.CaseReopened(case_no=NO["E"], owner=K2, reason="居民回访不满意", survey_id="s-E",
                                                    by="resident"))
    h.add("E", at(2, "09:00"), c.CaseSurveyAnswered(case_no=NO["E"], survey_id="s-E", verdict="unsatisfied",
                                                    channel="sms", within_window=True), source="notify")
    h.dispatched("E", at(2, "09:10"), K2, G3, "MD01", due=at(2, "14:40"), occasion="reopen")
    h.owner_did("E", at(2, "09:20"), c.CaseSigned(case_no=NO["E"], owner=K2, update_id=u("E")))
    h.owner_did("E", at(2, "10:00"), c.CaseResolved(case_no=NO["E"], owner=K2, result="再次调解", update_id=u("E")))
    h.owner_did("E", at(2, "10:30"), c.CaseClosed(case_no=NO["E"], owner=K2, outcome="resolved", result="再次调解",
                                                  by="operator:值班员", closed_at=at(2, "10:30"), on_time=True))
    h.add("E", at(2, "11:00"), c.CaseSurveyAnswered(case_no=NO["E"], survey_id="s-E2", verdict="satisfied",
                                                    channel="web", within_window=True), source="notify")
    # F
    h.reported("F", at(0, "15:00"), grid=G2, category="CM04", worker="W002")
    h.accepted("F", at(0, "15:10"), G2, "CM04")
    h.dispatched("F", at(0, "15:20"), "huanwei", G2, "CM04", due=at(1, "10:20"))
    h.owner_did("F", at(0, "16:00"), c.CaseSigned(case_no=NO["F"], owner="huanwei", update_id=u("F")))
    h.owner_did("F", at(0, "17:00"), c.CaseResolved(case_no=NO["F"], owner="huanwei", result="已清运", update_id=u("F")))
    h.owner_did("F", at(1, "09:00"), c.CaseClosed(case_no=NO["F"], owner="huanwei", outcome="resolved", result="已清运",
                                                  by="operator:值班员", closed_at=at(1, "09:00"), on_time=True))
    h.add("F", at(2, "15:00"), c.CaseSurveyAnswered(case_no=NO["F"], survey_id="s-F", verdict="unsatisfied",
                                                    channel="sms", within_window=False), source="notify")
    # G
    h.reported("G", at(2, "10:00"), grid=None, category=None, worker=None)
    h.add("G", at(2, "10:30"), c.CaseRejected(case_no=NO["G"], reason="非本街道辖区", by="operator:值班员"))
    return h


ZERO = dict.fromkeys(("received", "coordinator_reports", "accepted", "rejected", "dispatched", "dispatches",
                      "signed_on_time", "resolved", "explained", "closed", "closed_on_time", "returned", "reworked",
                      "extended", "reopened", "went_overdue", "overdue_now", "due", "due_closed_on_time", "surveyed",
                      "satisfied", "surveyed_late", "fixed_on_the_spot", "urged"), 0)
NO_RATES = dict.fromkeys(("on_time_rate", "satisfaction_rate", "sign_rate", "close_rate", "rework_rate",
                          "return_rate", "extension_rate"))


def figures(**given: Any) -> dict[str, Any]:
    return {**ZERO, **NO_RATES, **given}


# ---- expected, by hand: D1–D2 (11-25 … 11-26), so F's D0 report, dispatch, signing and resolution are out -----

HUANWEI = figures(
    received=2, coordinator_reports=2, accepted=2,   # A, C (C's current owner is huanwei); F reported on D0
    dispatched=1,                                    # A's first dispatch (C's first went to chengguan)
    dispatches=2,                                    # A first, C by hand
    signed_on_time=1,                                # A: 40 minutes
    resolved=2, closed=3, closed_on_time=3,          # resolved A, C; closed A, C, F (F's close is on D1)
    extended=1,                                      # C's approved extension
    due=3, due_closed_on_time=3,                     # A (D1 14:50), C's second handling (D2 16:30), F (D1 10:20)
    surveyed=2, satisfied=1, surveyed_late=1,        # s-A satisfied, s-F unsatisfied and late
    on_time_rate=1.0, satisfaction_rate=0.5, sign_rate=1.0,
    close_rate=1.5,                                  # closed 3 / accepted 2 (F accepted on D0)
    rework_rate=0.0, return_rate=0.0, extension_rate=1.0)
CHENGGUAN = figures(
    received=1, coordinator_reports=1, accepted=1,   # B
    dispatched=2, dispatches=3,                      # B and C first; B's rework dispatch
    signed_on_time=0,                                # B signed after 2.5 work hours; C returned unsigned
    resolved=2, closed=1, closed_on_time=1,          # B resolved twice, closed once
    returned=1, reworked=1,                          # C returned; B reworked
    due=2, due_closed_on_time=1,                     # B's first handling (held past its 15:30 deadline, not closed)
                                                     # and its second (closed on time); C's was returned before 15:50
    surveyed=1, satisfied=1,                         # s-B1 answered twice, counted once
    on_time_rate=0.5, satisfaction_rate=1.0, sign_rate=0.0, close_rate=1.0,
    rework_rate=0.5,                                 # 1 rework / 2 resolved
    return_rate=0.5, extension_rate=0.0)             # 1 returned / 2 dispatched
COMMUNITY_K2 = figures(
    received=2, coordinator_reports=1, accepted=2,   # D (hotline), E (W013)
    dispatched=2, dispatches=3, signed_on_time=2,    # D, E first (both signed in 30 min); E's reopen dispatch
    resolved=2, closed=2, closed_on_time=2,          # E twice
    reopened=1, went_overdue=1, overdue_now=1,       # E reopened; D overdue and still in progress
    due=3, due_closed_on_time=2,                     # D (D2 14:00, open), E first (D1 14:30) and second (D2 14:40)
    surveyed=2, satisfied=1,                         # s-E unsatisfied, s-E2 satisfied
    on_time_rate=0.6667, satisfaction_rate=0.5, sign_rate=1.0, close_rate=1.0, rework_rate=0.0,
    return_rate=0.0, extension_rate=0.0)
NOBODY = figures(received=1, rejected=1)             # G: never dispatched, no place, no category
TOTAL = figures(
    received=6, coordinator_reports=4, accepted=5, rejected=1, dispatched=5, dispatches=8, signed_on_time=3,
    resolved=6, closed=6, closed_on_time=6, returned=1, reworked=1, extended=1, reopened=1, went_overdue=1,
    overdue_now=1, due=8, due_closed_on_time=6, surveyed=5, satisfied=3, surveyed_late=1,
    on_time_rate=0.75, satisfaction_rate=0.6, sign_rate=0.6, close_rate=1.2,
    rework_rate=0.1667,                              # 1 / 6
    return_rate=0.2, extension_rate=0.2)
COMMUNITY_C1 = figures(                              # A, B, C, F (F only from D1 on)
    received=3, coordinator_reports=3, accepted=3, dispatched=3, dispatches=5, signed_on_time=1,
    resolved=4, closed=4, closed_on_time=4,          # resolved A, B×2, C; closed A, B, C, F
    returned=1, reworked=1, extended=1,
    due=5, due_closed_on_time=4,                     # A, B first (late), B second, C second, F
    surveyed=3, satisfied=2, surveyed_late=1,        # s-A, s-B1, s-F
    on_time_rate=0.8, satisfaction_rate=0.6667, sign_rate=0.3333, close_rate=1.3333, rework_rate=0.25,
    return_rate=0.3333, extension_rate=0.3333)
# D2 only (11-26), the street's total: D0 and D1 events are out.
TOTAL_D2 = figures(
    received=1, rejected=1,                          # G
    dispatches=1,                                    # E's reopen dispatch (no first dispatch on D2)
    resolved=3, closed=3, closed_on_time=3,          # B, C, E
    reopened=1, went_overdue=1, overdue_now=1,       # E; D; D (now)
    due=4, due_closed_on_time=3,                     # B second (11:05), C extended (16:30), D (14:00), E second (14:40)
    surveyed=5, satisfied=3, surveyed_late=1,        # s-A, s-B1, s-E2 satisfied; s-E, s-F not
    on_time_rate=0.75, satisfaction_rate=0.6, rework_rate=0.0)


def rows_by_key(body: dict[str, Any]) -> dict[str | None, dict[str, Any]]:
    return {row["key"]: {k: v for k, v in row.items() if k not in ("key", "name")} for row in body["rows"]}


async def test_figures_and_reports_from_a_hand_built_history(make_settings):
    from shared.topics import Topics, ensure_topics
    from tests.conftest import delete_topics, drop_schemas

    settings = make_settings(deadline_poll_seconds=3600)
    await asyncio.wait_for(ensure_topics(settings.kafka_bootstrap, Topics(settings.topic_prefix).fixed()), 30)
    try:
        async with running(build(settings, manage_runtime=False)) as service:
            events = history().envelopes
            await send(settings, *events)
            ids = [e.id for e in events]
            await eventually(lambda: service.runtime.pool.fetchval(
                "SELECT count(*) = $2 FROM case_events WHERE event_id = ANY($1)", ids, len(ids)), 60)
            refused = await service.runtime.pool.fetch("SELECT type, note FROM case_events WHERE effect = 'refused'")
            assert not refused, refused  # the history is a legal one: every event applied
            await grant(settings, service, token="stats-operator", name="值班员", role="operator")
            await grant(settings, service, token="stats-owner", name="环卫所", role="owner", owner_code="huanwei")
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://supervision",
                                         headers={"Authorization": "Bearer stats-operator"}, timeout=20) as http:
                await check_stats(http)
                await check_reports(http)
                await check_refusals(http)
                await check_kept_days(http, service, settings)
    finally:
        await drop_schemas(settings)
        await delete_topics(settings)


async def get(http: httpx.AsyncClient, path: str, **params: Any) -> httpx.Response:
    answer = await asyncio.wait_for(http.get(path, params=params), 20)
    assert answer.status_code == 200, answer.text
    return answer


async def check_stats(http: httpx.AsyncClient) -> None:
    by_owner = (await get(http, "/api/v1/stats", **{"from": "2026-11-25", "to": "2026-11-26"})).json()
    assert (by_owner["from"], by_owner["to"], by_owner["by"]) == ("2026-11-25", "2026-11-26", "owner")
    assert rows_by_key(by_owner) == {"chengguan": CHENGGUAN, "huanwei": HUANWEI, K2: COMMUNITY_K2, None: NOBODY}
    assert [(r["key"], r["name"]) for r in by_owner["rows"]] == [  # by key, the cases of no key last
        (K2, "南龙头社区"), ("chengguan", "城管执法中队"), ("huanwei", "环卫所"), (None, "（未派遣）")]
    assert by_owner["total"] == TOTAL

    by_community = (await get(http, "/api/v1/stats", **{"from": "2026-11-25", "to": "2026-11-26",
                                                         "by": "community"})).json()
    assert rows_by_key(by_community) == {C1: COMMUNITY_C1, C2: COMMUNITY_K2, None: NOBODY}
    assert by_community["total"] == TOTAL

    only_d2 = (await get(http, "/api/v1/stats", **{"from": "2026-11-26", "to": "2026-11-26", "by": "category"})).json()
    assert only_d2["total"] == TOTAL_D2
    nothing = (await get(http, "/api/v1/stats", **{"from": "2026-10-01", "to": "2026-10-31"})).json()
    assert nothing["rows"] == [{"key": K2, "name": "南龙头社区", **figures(overdue_now=1)}]  # D is late now, whenever
    assert nothing["total"] == figures(overdue_now=1)

    # By coordinator: W001 (A, B), W002 (C; F reported on D0), W013 (E); the rest reported by no coordinator.
    by_coordinator = rows_by_key((await get(http, "/api/v1/stats", **{"from": "2026-11-25", "to": "2026-11-26",
                                                                      "by": "coordinator"})).json())
    assert {k: (v["received"], v["coordinator_reports"], v["fixed_on_the_spot"]) for k, v in by_coordinator.items()} \
        == {"W001": (2, 2, 0), "W002": (1, 1, 0), "W013": (1, 1, 0), None: (2, 0, 0)}

    answer = await get(http, "/api/v1/stats", **{"from": "2026-11-25", "to": "2026-11-26", "format": "csv"})
    assert answer.headers["content-type"].startswith("text/csv")
    assert 'filename="stats-2026-11-25-2026-11-26-owner.csv"' in answer.headers["content-disposition"]
    assert answer.content.startswith("\ufeff".encode())
    lines = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert [(line["key"], line["name"]) for line in lines] == [
        (K2, "南龙头社区"), ("chengguan", "城管执法中队"), ("huanwei", "环卫所"), ("", "（未派遣）"), ("合计", "全街道")]
    expected = [COMMUNITY_K2, CHENGGUAN, HUANWEI, NOBODY, TOTAL]
    for line, want in zip(lines, expected):
        assert {k: v for k, v in line.items() if k not in ("key", "name")} == \
            {k: "" if v is None else str(v) for k, v in want.items()}


async def check_reports(http: httpx.AsyncClient) -> None:
    weekly = (await get(http, "/api/v1/reports/weekly", community=C2, week="2026-W48")).json()
    assert (weekly["name"], weekly["from"], weekly["to"]) == ("南龙头社区", "2026-11-23", "2026-11-29")
    g3 = next(r for r in weekly["rows"] if r["unit_grid"] == G3)
    # D and E reported this week; D still in progress (open) and past its deadline (late); E closed on time.
    assert g3 == {"unit_grid": G3, "name": g3["name"], "coordinator": "W013", "coordinator_name": "网格员013",
                  "reported": 2, "open": 1, "late": 1, "reported_cases": [NO["D"], NO["E"]],
                  "open_cases": [NO["D"]], "late_cases": [NO["D"]]}
    assert all(r["reported"] == r["open"] == r["late"] == 0 for r in weekly["rows"] if r["unit_grid"] != G3)
    assert weekly["total"] == {"reported": 2, "open": 1, "late": 1}
    week_csv = await get(http, "/api/v1/reports/weekly", community=C2, week="2026-W48", format="csv")
    rows = list(csv.DictReader(io.StringIO(week_csv.content.decode("utf-8-sig"))))
    assert {r["unit_grid"]: (r["reported"], r["late_cases"]) for r in rows}[G3] == ("2", NO["D"])

    # November: F's D0 events count too. Communities: C1 on time 4/5 = 0.8 (satisfaction 2/3), C2 2/3 = 0.6667;
    # the other ten have nothing due: ranked after, sharing rank 3. Departments: huanwei 3/3 = 1.0, chengguan 1/2.
    ranking = (await get(http, "/api/v1/reports/ranking", month="2026-11")).json()
    top = [(r["rank"], r["key"], r["on_time_rate"], r["satisfaction_rate"]) for r in ranking["communities"][:3]]
    assert top[:2] == [(1, C1, 0.8, 0.6667), (2, C2, 0.6667, 0.5)] and top[2][0] == 3
    assert len(ranking["communities"]) == 12 and {r["rank"] for r in ranking["communities"][2:]} == {3}
    assert [(r["rank"], r["key"], r["on_time_rate"]) for r in ranking["departments"][:2]] == [
        (1, "huanwei", 1.0), (2, "chengguan", 0.5)]
    assert all(r["rank"] == 3 and r["on_time_rate"] is None for r in ranking["departments"][2:])

    # Assessment, November: W001 reported A and B (valid both; none fixed on the spot: A was dispatched), G1's due: A, B twice → 2 of 3
    # on time. W002: C and F (D0), none fixed; G2's due: C, F → 2 of 2. W013: E (dispatched, not fixed on the spot), G3: D, E twice → 2 of 3.
    assessment = {r["worker_id"]: r for r in (await get(http, "/api/v1/reports/assessment", month="2026-11")).json()["rows"]}
    assert len(assessment) == 122
    pick = ("reports", "valid_reports", "fixed_on_the_spot", "grid_due", "grid_due_closed_on_time", "grid_on_time_rate")
    assert {w: tuple(assessment[w][k] for k in pick) for w in ("W001", "W002", "W013", "W004")} == {
        "W001": (2, 2, 0, 3, 2, 0.6667), "W002": (2, 2, 0, 2, 2, 1.0), "W013": (1, 1, 0, 3, 2, 0.6667),
        "W004": (0, 0, 0, 0, 0, None)}
    assert (assessment["W013"]["unit_grid"], assessment["W013"]["community"]) == (G3, C2)

    # 2026: 7 received (A–G), 6 closed (A, B, C, E twice, F): 6/7. CM04: A, C, F → 3/3; CM01: B 1/1; MD01: D, E
    # received 2, closed 2 (E twice); G: 1 received, none closed.
    year = (await get(http, "/api/v1/reports/year", year=2026)).json()
    assert (year["received"], year["closed"], year["share"]) == (7, 6, 0.8571)
    assert {r["key"]: (r["received"], r["closed"], r["share"]) for r in year["by_category"]} == {
        "CM01": (1, 1, 1.0), "CM04": (3, 3, 1.0), "MD01": (2, 2, 1.0), None: (1, 0, 0.0)}
    assert {r["key"]: (r["received"], r["closed"], r["share"]) for r in year["by_community"]} == {
        C1: (4, 4, 1.0), C2: (2, 2, 1.0), None: (1, 0, 0.0)}
    year_csv = await get(http, "/api/v1/reports/year", year=2026, format="csv")
    assert year_csv.content.decode("utf-8-sig").splitlines()[-1] == "total,合计,全街道,7,6,0.8571"


QUESTIONS = [("/api/v1/stats", {"from": "2026-11-25", "to": "2026-11-26", "by": by})
             for by in ("owner", "community", "unit_grid", "coordinator", "category")] + [
    ("/api/v1/stats", {"from": "2026-11-24", "to": "2026-12-31", "by": "owner"}),
    ("/api/v1/stats", {"from": "2026-11-26", "to": "2026-11-26", "by": "category"}),
    ("/api/v1/reports/ranking", {"month": "2026-11"}), ("/api/v1/reports/assessment", {"month": "2026-11"}),
    ("/api/v1/reports/year", {"year": 2026})]


async def answers(http: httpx.AsyncClient) -> list[Any]:
    """Every question's answer, without the moment it was counted."""
    found = []
    for path, params in QUESTIONS:
        body = (await get(http, path, **params)).json()
        body.pop("as_of", None)
        found.append(body)
    return found


async def check_kept_days(http: httpx.AsyncClient, service, settings) -> None:
    """The same figures from kept days as counted from the events; an event of an old case marks its days, which
    are counted live until kept again; and a day kept on another basis is not used."""
    pool, figures = service.runtime.pool, service.app.state.street_figures
    counted = await answers(http)
    assert await figures.refresh(max_days=400) >= 3
    kept = {r["day"].isoformat() for r in await pool.fetch("SELECT day FROM stats_days_kept")}
    assert {"2026-11-24", "2026-11-25", "2026-11-26"} <= kept
    assert await pool.fetchval("SELECT count(*) FROM stats_days WHERE day = '2026-11-25'") > 0
    await check_stats(http)
    await check_reports(http)
    assert await answers(http) == counted
    # (they are read: what is kept for D1 is what the answer holds)
    await pool.execute("UPDATE stats_days SET counts[1] = counts[1] + 100 WHERE day = '2026-11-25' AND by = 'owner'")
    tampered = (await get(http, "/api/v1/stats", **{"from": "2026-11-25", "to": "2026-11-26"})).json()
    rows_d1 = await pool.fetchval("SELECT count(*) FROM stats_days WHERE day = '2026-11-25' AND by = 'owner'")
    assert rows_d1 > 0 and tampered["total"]["received"] == TOTAL["received"] + 100 * rows_d1
    await pool.execute("UPDATE stats_days SET counts[1] = counts[1] - 100 WHERE day = '2026-11-25' AND by = 'owner'")

    # The resident answers s-A again, late, unsatisfied (on D2): the final answer counts. A's days are marked.
    again = c.CaseSurveyAnswered(case_no=NO["A"], survey_id="s-A", verdict="unsatisfied", channel="sms",
                                 within_window=False).envelope(source="notify", case_id="stats-A", occurred_at=at(2, "12:00"))
    await send(settings, again)
    await eventually(lambda: pool.fetchval("SELECT count(DISTINCT day) = 2 FROM stats_marks WHERE day IN "
                                           "('2026-11-25', '2026-11-26')"), 30)
    by_owner = (await get(http, "/api/v1/stats", **{"from": "2026-11-25", "to": "2026-11-26"})).json()
    huanwei = rows_by_key(by_owner)["huanwei"]
    assert (huanwei["surveyed"], huanwei["satisfied"], huanwei["surveyed_late"]) == (2, 0, 2)  # s-A, s-F: both late
    assert (by_owner["total"]["satisfied"], by_owner["total"]["surveyed_late"]) == (2, 2)
    changed = await answers(http)  # counted live where marked
    await figures.refresh(max_days=400)
    assert await pool.fetchval("SELECT count(*) FROM stats_marks") == 0
    assert await answers(http) == changed  # from the days kept again
    await pool.execute("UPDATE stats_days_kept SET basis = 'another'")  # e.g. the work calendar changed
    await pool.execute("UPDATE stats_days SET counts[1] = counts[1] + 100")  # what that basis had counted
    assert await answers(http) == changed  # not used: counted from the events
    await pool.execute("DELETE FROM stats_days_kept")
    assert await answers(http) == changed  # nothing kept: the one statement


async def check_refusals(http: httpx.AsyncClient) -> None:
    period = {"from": "2026-11-25", "to": "2026-11-26"}
    for path, params in (("/api/v1/stats", period), ("/api/v1/reports/weekly", {"community": C1, "week": "2026-W48"}),
                         ("/api/v1/reports/ranking", {"month": "2026-11"}),
                         ("/api/v1/reports/assessment", {"month": "2026-11"}), ("/api/v1/reports/year", {"year": 2026})):
        assert (await http.get(path, params=params, headers={"Authorization": ""})).status_code == 401, path
        assert (await http.get(path, params=params, headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (await http.get(path, params=params, headers={"Authorization": "Bearer stats-owner"})).status_code == 403
    for params, says in (({"from": "2026-11-31", "to": "2026-12-01"}, "from"),
                         ({"from": "yesterday", "to": "2026-12-01"}, "from"),
                         ({"from": "2026-11-26", "to": "2026-11-25"}, "after"),
                         ({**period, "by": "street"}, "by"), ({**period, "format": "xls"}, "format"),
                         ({"to": "2026-11-26"}, "from"), ({"from": "1999-12-31", "to": "2000-01-01"}, "2000")):
        answer = await http.get("/api/v1/stats", params=params)
        assert answer.status_code == 422 and says in answer.json()["detail"], (params, answer.text)
    for path, params, says in (("/api/v1/reports/weekly", {"community": "370402999999", "week": "2026-W48"}, "community"),
                               ("/api/v1/reports/weekly", {"community": C1, "week": "2027-W53"}, "no week"),
                               ("/api/v1/reports/weekly", {"community": C1, "week": "2026-48"}, "week"),
                               ("/api/v1/reports/ranking", {"month": "2026-13"}, "month"),
                               ("/api/v1/reports/assessment", {"month": "1999-12"}, "month"),
                               ("/api/v1/reports/year", {"year": 1999}, "year")):
        answer = await http.get(path, params=params)
        assert answer.status_code == 422 and says in answer.json()["detail"], (path, params, answer.text)

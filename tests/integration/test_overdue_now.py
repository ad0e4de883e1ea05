"""超期 now, one rule for every screen and figure (services/supervision/domain/overdue.py), on the real broker and
database: cases on the rule's edges, then — the clock stopped at one moment — the work screen's list
(GET /api/v1/cases?overdue=true, and each row's `overdue`), the owner's 已超期 filter, the statistics (`overdue_now` of /api/v1/stats and
/api/v1/stats/summary) and the big screen's live figures (`overdue_now`) give the same count and the same cases.
The SQL form of the rule is held to the Python form on the same edges in PostgreSQL itself."""
from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, AsyncIterator

import asyncpg
import httpx
import pytest

from services.supervision.domain.overdue import is_overdue, overdue_sql
from services.supervision.live.bootstrap import build as build_live
from shared.clock import move_clock, now
from shared.contracts import Envelope
from shared.contracts import cases as c
from shared.contracts.common import TimeLimit
from shared.runtime import Service
from shared.settings import Settings
from shared.topics import Topics, ensure_topics
from tests.supervision_cases import UNIT_GRID, accepted, reported, send
from tests.supervision_cases import start as start_supervision
from tests.support import eventually, grant, running

pytestmark = pytest.mark.integration

OWNER = "huanwei"
OPERATOR = "overdue-operator"
OWNER_TOKEN = "overdue-owner"
SECOND = timedelta(seconds=1)
HOUR = timedelta(hours=1)


async def test_sql_and_python_forms_of_the_rule_agree_on_its_edges(isolated: Settings):
    at = datetime.fromisoformat("2026-12-02T10:00:00+08:00")
    rows = [(state, due, marked) for state in ("dispatched", "in_progress", "suspended", "resolved", "explained",
                                               "closed", "returned", "rework", "reopened", "accepted", None)
            for due in (at - HOUR, at - SECOND, at, at + SECOND, None) for marked in (False, True)]
    conn = await asyncpg.connect(isolated.database_url)
    try:
        await conn.execute("CREATE TEMP TABLE cases (n int, state text, due_at timestamptz, overdue_at timestamptz)")
        await conn.executemany("INSERT INTO cases VALUES ($1, $2, $3, $4)",
                               [(n, s, d, at - HOUR if m else None) for n, (s, d, m) in enumerate(rows)])
        answers = dict(await conn.fetch(f"SELECT n, {overdue_sql('$1', 'c')} FROM cases c ORDER BY n", at))
    finally:
        await conn.close()
    assert all(isinstance(answers[n], bool) for n in answers)  # never NULL: a filter `= false` keeps every row
    assert [answers[n] for n in range(len(rows))] == [is_overdue(s, d, m, at) for s, d, m in rows]
    # 2 running states × 3 deadlines not after `at` × marked or not, and the 5 suspended ones marked
    assert sum(answers.values()) == 2 * 3 * 2 + 5


class Edges:
    """One case per edge of the rule, its events as the services publish them, all relative to the moment T."""

    def __init__(self, moment: datetime):
        self.T = moment
        self.at = now()  # when the events happen (before T: T is ahead of the wall clock)
        self.envelopes: list[Envelope] = []
        self.final_state: dict[str, str] = {}
        self.final_facts: dict[str, tuple[str, datetime, bool]] = {}  # (state, deadline in force, overdue mark)
        self.overdue: set[str] = set()
        self.numbers: dict[str, str] = {}

    def case(self, name: str, due: datetime, *steps: str, state: str, overdue: bool) -> None:
        case_id, case_no = f"edge-{name}-{uuid.uuid4().hex[:6]}", f"20261206-{len(self.numbers) + 7001}"
        self.numbers[case_id] = case_no
        add = lambda event, source="supervision": self.envelopes.append(  # noqa: E731
            event.envelope(source=source, case_id=case_id, occurred_at=self.at))
        self.envelopes += [reported(case_id, case_no), accepted(case_id, case_no)]
        add(c.CaseDispatched(case_no=case_no, owner=OWNER, category="CM04", unit_grid=UNIT_GRID, priority="normal",
                             time_limit=TimeLimit(value=4, unit="work_hours"), dispatched_at=self.at, due_at=due),
            "routing")
        for i, step in enumerate(steps):
            u = f"u-{name}-{i}"
            add({"signed": lambda: c.CaseSigned(case_no=case_no, owner=OWNER, update_id=u),
                 "marked": lambda: c.CaseOverdue(case_no=case_no, owner=OWNER, due_at=due),
                 "suspended": lambda: c.CaseSuspended(case_no=case_no, owner=OWNER, reason="等待居民在家", by="owner:huanwei",
                                                      update_id=u),
                 "resolved": lambda: c.CaseResolved(case_no=case_no, owner=OWNER, result="已更换", update_id=u),
                 "closed": lambda: c.CaseClosed(case_no=case_no, owner=OWNER, outcome="resolved", result="已更换",
                                                by="operator:值班员", closed_at=self.at, on_time=False),
                 "returned": lambda: c.CaseReturned(case_no=case_no, owner=OWNER, reason="非本单位职责", update_id=u),
                 "asked": lambda: c.CaseExtensionRequested(case_no=case_no, owner=OWNER, until=self.T + HOUR,
                                                           reason="需调配车辆", update_id=u),
                 "extended": lambda: c.CaseExtensionDecided(case_no=case_no, owner=OWNER, approved=True,
                                                            due_at=self.T + HOUR, by="operator:值班员"),
                 }[step]())
        self.final_state[case_id] = state
        marked = "marked" in steps and "extended" not in steps  # an extension ahead clears the mark
        self.final_facts[case_id] = (state, self.T + HOUR if "extended" in steps else due, marked)
        if overdue:
            self.overdue.add(case_id)


def edges(moment: datetime) -> Edges:
    e, T = Edges(moment), moment
    e.case("due-a-second-ago", T - SECOND, state="dispatched", overdue=True)
    e.case("due-this-moment", T, "signed", state="in_progress", overdue=True)
    e.case("due-in-a-second", T + SECOND, "signed", state="in_progress", overdue=False)
    e.case("late-and-marked", T - HOUR, "signed", "marked", state="in_progress", overdue=True)
    e.case("suspended-in-time", T - SECOND, "signed", "suspended", state="suspended", overdue=False)
    e.case("suspended-late", T - HOUR, "signed", "marked", "suspended", state="suspended", overdue=True)
    e.case("resolved-late", T - HOUR, "signed", "marked", "resolved", state="resolved", overdue=False)
    e.case("closed-late", T - HOUR, "signed", "marked", "resolved", "closed", state="closed", overdue=False)
    e.case("returned-late", T - HOUR, "marked", "returned", state="returned", overdue=False)
    e.case("extended", T - HOUR, "signed", "marked", "asked", "extended", state="in_progress", overdue=False)
    return e


@asynccontextmanager
async def live_figures(settings: Settings) -> AsyncIterator[tuple[Service, httpx.AsyncClient]]:
    """The big screen's live process (faust app and its HTTP app), in this process."""
    async with running(build_live(settings, manage_runtime=False)) as service:
        await grant(settings, service, token=OPERATOR, name="值班员", role="operator")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://live",
                                     headers={"Authorization": f"Bearer {OPERATOR}"}, timeout=20) as http:
            yield service, http


async def test_the_work_screen_the_statistics_and_the_big_screen_count_the_same_overdue_cases(make_settings):
    # The deadline poller would fire only at the cases' deadlines, all an hour or more ahead of the wall clock.
    settings = make_settings(deadline_poll_seconds=3600)
    topics = Topics(settings.topic_prefix)
    await asyncio.wait_for(ensure_topics(settings.kafka_bootstrap, topics.fixed() + [topics.for_owner(OWNER)]), 30)
    moment = (now() + 2 * HOUR).replace(microsecond=0)
    cases = edges(moment)
    supervision = await start_supervision(settings)
    try:
        await grant(settings, supervision, token=OPERATOR, name="值班员", role="operator")
        await grant(settings, supervision, token=OWNER_TOKEN, name="环卫所", role="owner", owner_code=OWNER)
        async with live_figures(settings) as (live, live_http):
            await send(settings, *cases.envelopes)

            async def supervision_has_all() -> bool:
                applied = await supervision.runtime.pool.fetchval(
                    "SELECT count(*) FROM case_events WHERE event_id = ANY($1)", [e.id for e in cases.envelopes])
                return applied == len(cases.envelopes)

            def live_has_all() -> bool:
                kept = {case_id: live.runtime.streams.cases.get(case_id) or {} for case_id in cases.final_state}
                return {case_id: (k.get("state"), k.get("due_at") and datetime.fromisoformat(k["due_at"]),
                                  bool(k.get("overdue"))) for case_id, k in kept.items()} == cases.final_facts

            await eventually(supervision_has_all, 60)
            states = await supervision.runtime.pool.fetch("SELECT case_id, state FROM cases WHERE case_id = ANY($1)",
                                                          list(cases.final_state))
            assert {r["case_id"]: r["state"] for r in states} == cases.final_state  # no event was refused
            await eventually(lambda: asyncio.sleep(0, live_has_all()), 60)

            move_clock(moment, stopped=True)
            try:
                answers = await _read_everything(supervision, live_http, moment)
            finally:
                move_clock(None)
    finally:
        await asyncio.wait_for(supervision.runtime.stop(), 30)

    expected = len(cases.overdue)
    assert expected == 4
    assert {cases.numbers[i] for i in cases.overdue} == answers["listed"], "the work screen's overdue list"
    assert answers["flagged"] == answers["listed"], "each row's overdue flag"
    in_progress = {cases.numbers[i] for i in cases.overdue if cases.final_state[i] == "in_progress"}
    assert answers["searched"] == in_progress, "the search's overdue flag (of the cases in progress)"
    assert answers["owner_filter"] == answers["listed"], "the owner's 已超期 filter"
    assert answers["owner_flagged"] == answers["listed"], "each task's overdue flag"
    assert answers["stats"] == expected, "/api/v1/stats overdue_now"
    assert answers["stats_owner"] == expected, "/api/v1/stats overdue_now of the owner's row"
    assert answers["summary"] == expected, "/api/v1/stats/summary overdue_now"
    assert answers["live"] == expected, "the big screen's overdue_now"
    assert answers["live_grid"] == expected, "the big screen's overdue cases of the unit grid"


async def _read_everything(supervision: Service, live_http: httpx.AsyncClient, moment: datetime) -> dict[str, Any]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=supervision.app), base_url="http://supervision",
                                 headers={"Authorization": f"Bearer {OPERATOR}"}, timeout=20) as http:
        listed = await http.get("/api/v1/cases", params={"overdue": "true", "limit": 500})
        every = await http.get("/api/v1/cases", params={"limit": 500})
        searched = await http.get("/api/v1/cases/search", params={"state": "in_progress", "limit": 500})
        day = moment.date().isoformat()
        stats = await http.get("/api/v1/stats", params={"from": day, "to": day, "by": "owner"})
        summary = await http.get("/api/v1/stats/summary")
        owner = {"Authorization": f"Bearer {OWNER_TOKEN}"}
        tasks = await http.get("/api/v1/tasks", params={"limit": 100}, headers=owner)
        late_tasks = await http.get("/api/v1/tasks", params={"filter": "overdue", "limit": 100}, headers=owner)
    figures = await live_http.get("/api/v1/live/figures")
    for answer in (listed, every, searched, stats, summary, figures, tasks, late_tasks):
        assert answer.status_code == 200, answer.text
    assert stats.json()["as_of"] == moment.isoformat()  # every reader answered for the same moment
    [owner_row] = [r for r in stats.json()["rows"] if r["key"] == OWNER]
    [grid] = [g for g in figures.json()["unit_grids"] if g["unit_grid"] == UNIT_GRID]
    return {
        "listed": {row["case_no"] for row in listed.json()["cases"]},
        "flagged": {row["case_no"] for row in every.json()["cases"] if row["overdue"]},
        "searched": {row["case_no"] for row in searched.json()["cases"] if row["overdue"]},
        "owner_filter": {task["case_no"] for task in late_tasks.json()["tasks"]},
        "owner_flagged": {task["case_no"] for task in tasks.json()["tasks"] if task["overdue"]},
        "stats": stats.json()["total"]["overdue_now"],
        "stats_owner": owner_row["overdue_now"],
        "summary": summary.json()["overdue_now"],
        "live": figures.json()["overdue_now"],
        "live_grid": grid["overdue"],
    }


async def test_moving_the_clock_past_a_deadline_makes_a_case_overdue_on_every_screen_at_once(isolated: Settings):
    """No screen asks the database's now(): the clock a test moves is the moment each of them judges by, so a
    deadline two hours ahead is passed at once, without waiting for it."""
    topics = Topics(isolated.topic_prefix)
    await asyncio.wait_for(ensure_topics(isolated.kafka_bootstrap, topics.fixed() + [topics.for_owner(OWNER)]), 30)
    deadline = (now() + 2 * HOUR).replace(microsecond=0)
    case = Edges(deadline)
    case.case("due-in-two-hours", deadline, "signed", state="in_progress", overdue=True)
    [case_no] = case.numbers.values()
    supervision = await start_supervision(isolated)
    try:
        await grant(isolated, supervision, token=OPERATOR, name="值班员", role="operator")
        await send(isolated, *case.envelopes)
        await eventually(lambda: supervision.runtime.pool.fetchval(
            "SELECT state = 'in_progress' FROM cases WHERE case_no = $1", case_no), 60)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=supervision.app), base_url="http://supervision",
                                     headers={"Authorization": f"Bearer {OPERATOR}"}, timeout=20) as http:

            async def overdue_on_each_screen() -> dict[str, bool]:
                listed = (await http.get("/api/v1/cases", params={"overdue": "true"})).json()["cases"]
                [found] = (await http.get("/api/v1/cases/search", params={"case_no": case_no})).json()["cases"]
                one = (await http.get(f"/api/v1/cases/{case_no}")).json()
                summary = (await http.get("/api/v1/stats/summary")).json()
                return {"list": [c["case_no"] for c in listed] == [case_no], "search": found["overdue"],
                        "case": one["overdue"], "summary": summary["overdue_now"] == 1}

            assert await overdue_on_each_screen() == dict.fromkeys(("list", "search", "case", "summary"), False)
            move_clock(deadline, stopped=True)
            try:
                assert await overdue_on_each_screen() == dict.fromkeys(("list", "search", "case", "summary"), True)
            finally:
                move_clock(None)
    finally:
        await asyncio.wait_for(supervision.runtime.stop(), 30)

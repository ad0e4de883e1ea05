"""Supervision's live figures (faust-streaming) on the real broker: case events in → figures, metrics and the
event stream out; stopped and started again with wangge.cases emptied → the same figures, from the changelogs."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from shared.contracts import Envelope
from shared.settings import Settings
from shared.street import Street
from shared.topics import Topics
from services.supervision.live.bootstrap import build
from services.supervision.live.forgetting import FORGET_AFTER
from services.supervision.live.streams import LiveOptions
from tests.live_running import MASKED_PHONE, OPERATOR, TERMINAL, Cases, running_live, until

pytestmark = pytest.mark.integration

def two_grids_of_one_community(street: Street) -> tuple[str, str, str]:
    """A community and two of its unit grids."""
    units = sorted(street.level("unit"), key=lambda g: g.code)
    community = street.community_of(units[0].code).code
    mine = [g.code for g in units if street.community_of(g.code).code == community]
    return community, mine[0], mine[1]


async def street_day(cases: Cases, street: Street) -> dict[str, Any]:
    """Five cases: two open in grid A (one past its deadline), one closed in grid B, one held without a place;
    three of category CM04 accepted in the community (a spike at threshold 3); one event delivered twice."""
    community, grid_a, grid_b = two_grids_of_one_community(street)
    ids = {n: str(uuid.uuid4()) for n in ("open", "late", "done", "held")}
    day = cases.at.strftime("%Y%m%d")
    await cases.dispatched(ids["open"], f"{day}-9001", "CM04", grid_a, cases.at + timedelta(days=2))
    await cases.dispatched(ids["late"], f"{day}-9002", "CM04", grid_a, cases.at - timedelta(minutes=1))
    await cases.dispatched(ids["done"], f"{day}-9003", "CM04", grid_b, cases.at + timedelta(days=2))
    await cases.closed(ids["done"], f"{day}-9003")
    await cases.reported(ids["held"], f"{day}-9004", None, None)
    await cases.send(cases.sent[1])  # case.accepted of the first case again: at-least-once delivery
    return {"community": community, "grid_a": grid_a, "grid_b": grid_b, "ids": ids}


def expected_hour(cases: Cases, figures: dict[str, Any]) -> int:
    return datetime.fromisoformat(figures["today"]["hours"][0]).hour + \
        int((cases.at - datetime.fromisoformat(figures["today"]["hours"][0])).total_seconds() // 3600)


async def figures_when(client: httpx.AsyncClient, base: str, ready: Any, timeout: float = 45) -> dict[str, Any]:
    """GET /api/v1/live/figures until `ready(figures)`; the last answer is in the assertion message otherwise."""
    last: dict[str, Any] = {}

    async def poll() -> dict[str, Any]:
        nonlocal last
        while True:
            answer = await client.get(f"{base}/api/v1/live/figures", headers={"Authorization": f"Bearer {OPERATOR}"})
            assert answer.status_code == 200, answer.text
            last = answer.json()
            if ready(last):
                return last
            await asyncio.sleep(0.2)

    try:
        return await asyncio.wait_for(poll(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"the live figures did not come: " + str({k: v for k, v in last.items() if k != "unit_grids"})) from None


def grid_row(figures: dict[str, Any], code: str) -> dict[str, Any]:
    return next(r for r in figures["unit_grids"] if r["unit_grid"] == code)


async def read_events(base: str, into: list[dict[str, Any]], raw: list[bytes], opened: asyncio.Event) -> None:
    """Read the SSE stream as the big screen does (a streamed GET with the bearer token)."""
    async with httpx.AsyncClient(timeout=None) as client:
        async with client.stream("GET", f"{base}/api/v1/live/events",
                                 headers={"Authorization": f"Bearer {OPERATOR}"}) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/event-stream")
            buffer = b""
            async for chunk in answer.aiter_bytes():
                raw.append(chunk)
                buffer += chunk
                while b"\n\n" in buffer:
                    block, buffer = buffer.split(b"\n\n", 1)
                    lines = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line)
                    if lines.get(b"event") == b"hello":
                        opened.set()
                    elif lines.get(b"event") == b"case":
                        into.append(orjson.loads(lines[b"data"]))


async def test_case_events_become_live_figures_metrics_and_a_pushed_stream(isolated, demo_street):
    settings = isolated
    cases = Cases(settings)
    async with running_live(settings) as base, httpx.AsyncClient(timeout=10) as client:
        events: list[dict[str, Any]] = []
        raw: list[bytes] = []
        opened = asyncio.Event()
        reader = asyncio.create_task(read_events(base, events, raw, opened))
        try:
            await asyncio.wait_for(opened.wait(), 20)
            day = await street_day(cases, demo_street)
            figures = await figures_when(client, base, lambda f: f["open_now"] == 3 and f["overdue_now"] == 1
                                         and grid_row(f, day["grid_b"])["open"] == 0 and f["spikes"])
            await asyncio.wait_for(until(lambda: len(events) >= len(cases.sent)), 20)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

        assert grid_row(figures, day["grid_a"]) | {"name": None} == {
            "unit_grid": day["grid_a"], "name": None, "community": day["community"], "open": 2, "overdue": 1}
        assert len(figures["unit_grids"]) == 122
        assert figures["generated_at"][-6:] == "+08:00"
        hour = expected_hour(cases, figures)
        if 0 <= hour < 24:  # the events are of today unless the test ran across midnight
            assert figures["today"]["unit_grids"][day["grid_a"]][hour] == 2  # the duplicate counted once
            assert figures["today"]["unit_grids"][day["grid_b"]][hour] == 1
            assert figures["today"]["street"][hour] == 3
        in_this_hour = datetime.fromisoformat(figures["generated_at"]).hour == cases.at.astimezone(
            datetime.fromisoformat(figures["generated_at"]).tzinfo).hour
        assert figures["cases_last_hour"].get(day["grid_a"], 0) == (2 if in_this_hour else 0)
        [spike] = figures["spikes"]
        assert (spike["community"], spike["category"], spike["count"], spike["threshold"]) == (
            day["community"], "CM04", 3, 3)
        assert spike["category_name"] != "CM04" and spike["window_start"].endswith("+08:00")

        # Every event pushed, as the screen shows it: number, type, place, category, time; no personal data.
        # (in order per case: the partitions of wangge.cases interleave as they come)
        def per_case(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
            grouped: dict[str, list[str]] = {}
            for case_no, kind in pairs:
                grouped.setdefault(case_no, []).append(kind)
            return grouped

        assert per_case([(e["case_no"], e["type"]) for e in events]) == per_case(
            [(c.data["case_no"], c.type) for c in cases.sent])
        first = events[0]
        assert set(first) >= {"case_no", "type", "unit_grid", "category", "occurred_at"}
        assert first["occurred_at"].endswith("+08:00")
        stream = b"".join(raw).decode()
        for private in ("reporter", "phone", MASKED_PHONE, "李**", "description", "三号楼东侧箱体破裂"):
            assert private not in stream

        metrics = (await client.get(f"{base}/metrics")).text
        assert "wangge_live_open_cases 3.0" in metrics
        assert "wangge_live_overdue_cases 1.0" in metrics
        assert f'wangge_live_unit_grid_overdue_cases{{unit_grid="{day["grid_a"]}"}} 1.0' in metrics
        assert f'wangge_live_cases_last_hour{{unit_grid="{day["grid_a"]}"}} {2.0 if in_this_hour else 0.0}' in metrics
        assert "wangge_live_spikes 1.0" in metrics
        assert f'wangge_live_spike_cases{{category="CM04",community="{day["community"]}"}} 3.0' in metrics

        health = await client.get(f"{base}/healthz")
        assert health.status_code == 200
        ready = await client.get(f"{base}/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["streams"] == "ok"


async def test_live_endpoints_need_an_operator_credential(isolated):
    async with running_live(isolated) as base, httpx.AsyncClient(timeout=10) as client:
        for path in ("/api/v1/live/figures", "/api/v1/live/events"):
            anonymous = await client.get(f"{base}{path}")
            assert anonymous.status_code == 401 and "凭证" in anonymous.json()["detail"]
            terminal = await client.get(f"{base}{path}", headers={"Authorization": f"Bearer {TERMINAL}"})
            assert terminal.status_code == 403 and "operator" in terminal.json()["detail"]


async def empty_topic(settings: Settings, topic: str) -> None:
    """Delete every record of a topic, so that nothing can be read from it again."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await asyncio.wait_for(consumer.start(), 20)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await asyncio.wait_for(admin.start(), 20)
    try:
        await asyncio.wait_for(admin.delete_records({tp: RecordsToDelete(end) for tp, end in ends.items()}), 30)
    finally:
        await admin.close()


async def test_a_restarted_live_process_recovers_its_figures_from_the_changelogs(isolated, demo_street):
    settings = isolated
    cases = Cases(settings)
    async with running_live(settings) as base, httpx.AsyncClient(timeout=10) as client:
        day = await street_day(cases, demo_street)
        before = await figures_when(client, base, lambda f: f["open_now"] == 3 and f["overdue_now"] == 1
                                    and grid_row(f, day["grid_b"])["open"] == 0 and f["spikes"])

    # Its state is in its own changelog topics, prefixed like the test's topics…
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await asyncio.wait_for(admin.start(), 20)
    try:
        names = set(await asyncio.wait_for(admin.list_topics(), 20))
    finally:
        await admin.close()
    app_id = f"{settings.topic_prefix}wangge-supervision-live"
    assert {f"{app_id}-{table}-changelog" for table in ("cases", "hourly-cases")} <= names
    # Spike windows an hour wide are the hourly table itself: a case's place is written once, not twice.
    assert f"{app_id}-spike-cases-changelog" not in names
    # Every table is keyed by case id like wangge.cases: no event takes a second hop through a topic of the app's own.
    assert not [name for name in names if name.startswith(app_id) and ("repartition" in name or "accepted-by" in name)]
    # …and with wangge.cases emptied, whatever the new process knows it can only have read from those.
    await empty_topic(settings, Topics(settings.topic_prefix).cases)
    async with running_live(settings, grant_tokens=False) as base, httpx.AsyncClient(timeout=10) as client:
        after = await figures_when(client, base, lambda f: True)
        for name in ("open_now", "overdue_now", "unit_grids", "spikes", "cases_last_hour"):
            assert after[name] == before[name], name
        assert after["today"]["unit_grids"] == before["today"]["unit_grids"]

        # …and it goes on from there: the late case closed, a new one accepted in grid B.
        await cases.closed(day["ids"]["late"], f"{cases.at:%Y%m%d}-9002")
        await cases.accepted(str(uuid.uuid4()), f"{cases.at:%Y%m%d}-9005", "CM04", day["grid_b"])
        moved = await figures_when(client, base, lambda f: f["overdue_now"] == 0 and f["open_now"] == 3
                                   and grid_row(f, day["grid_b"])["open"] == 1
                                   and bool(f["spikes"]) and f["spikes"][0]["count"] >= 4)
        assert grid_row(moved, day["grid_a"])["open"] == 1
        assert moved["spikes"][0]["count"] == 4


async def test_a_faust_agent_stuck_on_an_event_makes_healthz_ask_for_a_restart(isolated):
    """faust's agent hangs on one case event while more wait: the watchdog sees the live group's lag make no progress
    while Kafka and PostgreSQL answer, and the process reports itself unhealthy, so that its supervisor restarts it."""
    settings = isolated.model_copy(update={"consumer_stall_seconds": 3.0, "consumer_lag_interval_seconds": 0.5})
    service = build(settings, manage_runtime=False)
    runtime = service.runtime
    taken = asyncio.Event()

    async def hang(envelope: Envelope) -> None:  # a handler that never returns (a lost wait, a deadlock)
        taken.set()
        await asyncio.Event().wait()

    runtime.streams.follow = hang  # type: ignore[method-assign]
    await asyncio.wait_for(runtime.start(), 60)
    try:
        await runtime.wait_until_consuming(60)
        cases = Cases(settings)
        for n in range(3):
            await cases.accepted(str(uuid.uuid4()), f"{cases.at:%Y%m%d}-97{n:02d}", "CM01", "3704020010010101")
        await asyncio.wait_for(taken.wait(), 30)
        assert runtime.problem() is None  # a moment's wait is not a stall
        await asyncio.wait_for(until(lambda: runtime.problem() is not None), 30)
        assert "faust app following" in runtime.problem() and "held one event" in runtime.problem()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://live") as client:
            health = await client.get("/healthz")
        assert health.status_code == 503, health.text
    finally:
        await asyncio.wait_for(runtime.stop(), 45)  # the stuck event does not hold the stop


async def test_the_live_process_answers_healthz_while_its_tables_are_still_recovering(isolated):
    """faust's start returns only once the tables are recovered from their changelogs: minutes for a large street. The
    process must come up meanwhile — /healthz healthy, /readyz not ready — or a supervisor waiting for /healthz (./dev
    up gives 120 s) kills it half-way through recovery and starts it over, for good. A start that fails makes /healthz
    fail, so that the process is restarted."""
    service = build(isolated, manage_runtime=False)
    runtime = service.runtime
    recovering, release = asyncio.Event(), asyncio.Event()
    real_start = runtime.streams.start

    async def slow_start() -> None:  # the real start, held back as a long recovery holds it
        recovering.set()
        await release.wait()
        await real_start()

    runtime.streams.start = slow_start  # type: ignore[method-assign]
    await asyncio.wait_for(runtime.start(), 60)  # returns although the faust app has not started
    try:
        await asyncio.wait_for(recovering.wait(), 10)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://live") as client:
            health, ready = await client.get("/healthz"), await client.get("/readyz")
            assert health.status_code == 200, health.text
            assert ready.status_code == 503 and "faust" in ready.text, ready.text
            release.set()
            await runtime.wait_until_consuming(60)
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
    finally:
        release.set()
        await asyncio.wait_for(runtime.stop(), 60)


async def test_a_live_process_whose_faust_app_cannot_start_asks_for_a_restart(isolated):
    service = build(isolated, manage_runtime=False)
    runtime = service.runtime

    async def failing_start() -> None:
        raise RuntimeError("changelog topics refused")

    runtime.streams.start = failing_start  # type: ignore[method-assign]
    await asyncio.wait_for(runtime.start(), 60)
    try:
        with pytest.raises(RuntimeError, match="could not start"):
            await runtime.wait_until_consuming(30)
        assert "changelog topics refused" in (runtime.problem() or "")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://live") as client:
            health = await client.get("/healthz")
        assert health.status_code == 503 and "could not start" in health.text, health.text
    finally:
        await asyncio.wait_for(runtime.stop(), 60)


async def test_a_recovery_that_stops_reading_its_changelogs_is_a_stall(isolated):
    """While the tables recover, reading changelog records is the process's progress; a faust fetcher wedged halfway
    (a broker restart in the middle of recovery) reads none of the records left, and the watchdog's probe must say so
    — else /readyz says "recovering" for ever and nothing restarts the process. Before its partitions are assigned,
    nothing is known to wait, and that is no stall."""
    from aiokafka import TopicPartition as TP

    service = build(isolated, manage_runtime=False)
    runtime = service.runtime
    await asyncio.wait_for(runtime.start(), 60)
    try:
        await runtime.wait_until_consuming(60)
        recovery = runtime.streams.app.tables.recovery
        tp = TP(f"{runtime.streams.app_id}-cases-changelog", 0)
        recovery.completed.clear()  # as in the middle of a recovery: 90 records of the changelog are left
        # (only this partition's: the offsets left from the real recovery, -1 each where nothing was read, could
        # add up to what the first look last saw)
        recovery.active_highwaters.clear()
        recovery.active_offsets.clear()
        recovery.active_highwaters[tp], recovery.active_offsets[tp] = 100, 10
        await runtime._follows_cases()           # the first look: it has read something since the start
        with pytest.raises(RuntimeError, match="none of the 90 changelog records left"):
            await runtime._follows_cases()       # nothing read since the last look
        recovery.active_offsets[tp] = 40
        await runtime._follows_cases()           # reading again: progress
        recovery.active_highwaters.clear()
        recovery.active_offsets.clear()
        await runtime._follows_cases()
        await runtime._follows_cases()           # nothing known to wait (not yet assigned): no stall
        recovery.completed.set()
    finally:
        await asyncio.wait_for(runtime.stop(), 60)


async def changelog_rows(settings: Settings, case_ids: set[str], least: int) -> list[tuple[str, bytes | None]]:
    """The records of these cases in the live cases table's changelog, in order: (case id, row; None a deletion).
    Read until at least `least` are in and the topic has nothing more, or for 10 s."""
    changelog = f"{settings.topic_prefix}wangge-supervision-live-cases-changelog"
    consumer = AIOKafkaConsumer(changelog, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await asyncio.wait_for(consumer.start(), 20)
    try:
        rows: list[tuple[str, bytes | None]] = []
        deadline = asyncio.get_running_loop().time() + 10
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            rows += [(case_id, r.value) for records in batch.values() for r in records
                     for case_id in case_ids if case_id.encode() in (r.key or b"")]
            if len(rows) >= least and not batch:
                break
    finally:
        await consumer.stop()
    return rows


async def test_an_event_that_changes_nothing_on_the_screen_writes_no_changelog_record(isolated, demo_street):
    """Issue 17: each table write is a changelog record (produced, stored, read again at every recovery). A replayed
    event (at-least-once) moves nothing the screen keeps, and costs none."""
    settings = isolated
    cases = Cases(settings)
    case_id, case_no = str(uuid.uuid4()), f"{cases.at:%Y%m%d}-9101"
    _community, grid, _other = two_grids_of_one_community(demo_street)
    async with running_live(settings) as base, httpx.AsyncClient(timeout=10) as client:
        await cases.accepted(case_id, case_no, "CM04", grid)
        await figures_when(client, base, lambda f: f["open_now"] == 1)
        await cases.send(cases.sent[-1])  # case.accepted again: delivered twice (at-least-once)
        await cases.closed(case_id, case_no)
        await figures_when(client, base, lambda f: f["open_now"] == 0)
    rows = [value for _key, value in await changelog_rows(settings, {case_id}, least=3)]
    # reported, accepted, closed: one row each; the accepted delivered twice wrote nothing the second time.
    assert len(rows) == 3, [orjson.loads(r) for r in rows]


async def test_a_case_finished_long_ago_is_forgotten_by_the_cases_table(isolated, demo_street):
    """A restart reads the cases table's changelog whole, so the table keeps only what the figures may still need:
    a case closed more than FORGET_AFTER ago is deleted (a tombstone on its changelog, which the broker compacts
    away with its rows); one closed today is kept, for a reopening within the survey window. The figures are the
    same either way."""
    settings = isolated
    cases = Cases(settings)
    _community, grid, _other = two_grids_of_one_community(demo_street)
    old_id, new_id = str(uuid.uuid4()), str(uuid.uuid4())
    day = f"{cases.at:%Y%m%d}"
    async with running_live(settings) as base, httpx.AsyncClient(timeout=10) as client:
        await cases.accepted(old_id, f"{day}-9201", "CM04", grid)
        await cases.accepted(new_id, f"{day}-9202", "CM04", grid)
        await figures_when(client, base, lambda f: f["open_now"] == 2)
        await cases.closed(old_id, f"{day}-9201", at=cases.at - FORGET_AFTER - timedelta(hours=1))
        await cases.closed(new_id, f"{day}-9202")
        figures = await figures_when(client, base, lambda f: f["open_now"] == 0)
        assert grid_row(figures, grid)["open"] == 0
        metrics = (await client.get(f"{base}/metrics")).text
        assert "wangge_live_cases_forgotten_total 1.0" in metrics
    rows = await changelog_rows(settings, {old_id, new_id}, least=7)
    old = [value for case_id, value in rows if case_id == old_id]
    new = [value for case_id, value in rows if case_id == new_id]
    # reported, accepted, closed, then the deletion; the case closed today: its three rows, none deleted.
    assert len(old) == 4 and old[-1] is None and all(old[:-1]), old
    assert len(new) == 3 and all(new), new
    assert orjson.loads(new[-1])["state"] == "closed"

    # A restarted process recovers the case closed today, not the one forgotten.
    service = build(settings, manage_runtime=False, options=LiveOptions(spike_threshold=3))
    await asyncio.wait_for(service.runtime.start(), 60)
    try:
        await service.runtime.wait_until_consuming(60)
        table = service.runtime.streams.cases
        assert table.get(new_id) is not None and table[new_id]["state"] == "closed"
        assert table.get(old_id) is None
    finally:
        await asyncio.wait_for(service.runtime.stop(), 60)


def test_spike_windows_an_hour_wide_are_the_hourly_table_and_others_a_table_of_their_own(isolated):
    """A case's place at its acceptance is written once when the spike windows are cut like the hourly ones (the
    default); a street that cuts them otherwise gets a table of its own, with its own changelog."""
    from services.supervision.live.figures import Names
    from services.supervision.live.streams import LiveStreams

    names = Names(unit_grids={}, communities={}, community_of={}, categories={})
    hourly = LiveStreams(isolated, names, LiveOptions())
    assert hourly.spikes is hourly.hourly
    assert sorted(hourly.table_partitions()) == ["cases", "hourly-cases"]
    assert len(hourly.changelog_specs()) == 2
    half = LiveStreams(isolated, names, LiveOptions(spike_window_seconds=1800))
    assert half.spikes is not half.hourly
    assert sorted(half.table_partitions()) == ["cases", "hourly-cases", "spike-cases"]
    assert [spec.segment_ms for spec in half.changelog_specs()] == [3_600_000] * 3

"""Statistics benchmark: a year of a city (1,000,000 cases) in supervision's history, and the figures asked for.

    .venv/bin/python -m bench.stats --cases 1000000

Needs PostgreSQL and Kafka (`./dev infra` or `./dev up`); works in its own schema and topic prefix, dropped
afterwards unless --keep. It writes each case's life as supervision records it (case_events rows with the
contract's event data, built from the event models, and the read model's row): reported, accepted,
dispatched, signed, resolved, closed, surveyed — with returns, reworks, extensions, overdues and cases still
open in the mix, over the 365 days to today — then starts the real supervision service (`python -m
services.supervision`), waits while its refresher keeps the past days (once; a running street keeps each day
as it passes), and times `GET /api/v1/stats` over the whole year by each grouping, a month, the ranking
and the year report.

Goal (issue 8): each answers within 1 s. Figures, not assertions.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]


def _reused_tag(argv: list[str]) -> str | None:
    """The run tag given with --reuse (read before the imports below, which fix the prefixes)."""
    for i, arg in enumerate(argv):
        if arg == "--reuse" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--reuse="):
            return arg.split("=", 1)[1]
    return None


TAG = _reused_tag(sys.argv) or uuid.uuid4().hex[:6]
os.environ["WANGGE_SCHEMA_PREFIX"] = f"bench{TAG}_"
os.environ["WANGGE_TOPIC_PREFIX"] = f"bench{TAG}."

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import orjson  # noqa: E402

from shared.contracts import cases as c  # noqa: E402
from shared.contracts.common import TimeLimit  # noqa: E402
from bench.support import cleanup, free_port, stop_process  # noqa: E402
from shared.migrate import migrate_all  # noqa: E402
from shared.settings import get_settings  # noqa: E402
from shared.street import load_street  # noqa: E402
from shared.topics import Topics, ensure_topics  # noqa: E402

ZONE = ZoneInfo("Asia/Shanghai")
CHUNK = 10_000
EVENT_COLUMNS = ["event_id", "case_id", "type", "version", "occurred_at", "source", "data", "effect", "state_after"]
CASE_COLUMNS = ["case_id", "case_no", "state", "category", "unit_grid", "owner", "priority", "source", "reported_at",
                "accepted_at", "dispatched_at", "due_at", "closed_at", "overdue_at", "signed_at", "resolved_at",
                "close_outcome", "closed_on_time", "last_verdict", "dispatch_count", "rework_count", "events_seen",
                "last_event_at"]
VERDICTS = ["satisfied"] * 80 + ["basically_satisfied"] * 14 + ["unsatisfied"] * 6


def iso(t: datetime) -> str:
    return t.astimezone(ZONE).isoformat()


class Life:
    """One case's events (rows for case_events) and its read-model row, as supervision would have them."""

    def __init__(self, rng: random.Random, i: int, first: datetime, street, now: datetime):
        self.rows: list[tuple] = []
        self.case_id = f"bench-{i:07d}"
        self.case_no = f"B{i:07d}"
        self.rng = rng
        self.state = None
        day = first + timedelta(days=rng.randrange(max(1, (now - first).days + 1)))
        self.t = day.replace(hour=rng.randrange(8, 18), minute=rng.randrange(60))
        self.now = now
        self.grid = rng.choice(street["grids"])
        self.category, self.owner = rng.choice(street["categories"])
        if self.owner == "community":
            self.owner = street["community_of"][self.grid]
        self.worker = street["worker_of"].get(self.grid) if rng.random() < 0.7 else None

    def emit(self, model, state_after: str | None, effect: str = "moved", step_minutes: float = 0) -> bool:
        """Append one event after step_minutes; False (nothing appended) when that moment is still to come."""
        t = self.t + timedelta(minutes=step_minutes)
        if t > self.now:
            return False
        self.t = t
        data = model.model_dump(mode="json", exclude_none=True)
        self.rows.append((uuid.uuid4().hex, self.case_id, model.TYPE, 1, t, "bench", orjson.dumps(data).decode(),
                          effect, state_after))
        if effect == "moved" and state_after:
            self.state = state_after
        return True

    def live(self) -> tuple[list[tuple], tuple]:
        rng, no = self.rng, self.case_no
        coord = {"worker_id": self.worker, "device_id": f"SZT-{self.worker}"} if self.worker else None
        reported_at = self.t
        self.emit(c.CaseReported(case_no=no, source="terminal" if coord else "hotline", external_id=no,
                                 category=self.category, description="压测案件", reporter={"name": "张**", "phone": "139****0000"},
                                 coordinator=coord, observed_at=self.t, unit_grid=self.grid), "reported")
        self.emit(c.CaseAccepted(case_no=no, category=self.category, unit_grid=self.grid, description="压测案件"),
                  "accepted", step_minutes=rng.uniform(1, 20))
        limit_days = rng.choice([1, 2, 3, 5])
        dispatched_at = self.t + timedelta(minutes=rng.uniform(1, 30))
        due = dispatched_at + timedelta(days=limit_days)
        accepted_at = self.t
        closed_at = overdue_at = signed_at = resolved_at = None
        outcome = on_time = verdict = None
        dispatches, reworks = 0, 0

        def dispatch(occasion: str, owner: str) -> bool:
            nonlocal dispatches, due
            at = self.t + timedelta(minutes=rng.uniform(1, 30))
            due = at + timedelta(days=limit_days)
            ok = self.emit(c.CaseDispatched(case_no=no, owner=owner, category=self.category, unit_grid=self.grid,
                                            priority="normal", time_limit=TimeLimit(value=limit_days, unit="work_days"),
                                            dispatched_at=at, due_at=due, occasion=occasion),
                           "dispatched", step_minutes=(at - self.t).total_seconds() / 60)
            dispatches += ok
            return ok

        if dispatch("first", self.owner):
            if rng.random() < 0.03:  # 回退, then the command center sends it elsewhere
                self.emit(c.CaseReturned(case_no=no, owner=self.owner, reason="不属本单位", update_id=uuid.uuid4().hex),
                          "returned", step_minutes=rng.uniform(10, 120))
                dispatch("manual", "chengguan")
            if self.emit(c.CaseSigned(case_no=no, owner=self.owner, update_id=uuid.uuid4().hex), "in_progress",
                         step_minutes=rng.uniform(5, 180)):
                signed_at = self.t
                if rng.random() < 0.03:
                    due = due + timedelta(days=2)
                    self.emit(c.CaseExtensionDecided(case_no=no, owner=self.owner, approved=True, due_at=due,
                                                     by="operator:压测"), "in_progress", effect="noted", step_minutes=60)
                late = rng.random() < 0.1
                took = (due - self.t).total_seconds() / 60 * (rng.uniform(1.05, 1.8) if late else rng.uniform(0.1, 0.9))
                if late and self.emit(c.CaseOverdue(case_no=no, owner=self.owner, due_at=due), "in_progress",
                                      effect="noted", step_minutes=(due - self.t).total_seconds() / 60):
                    overdue_at = self.t
                    took = max(1.0, took - (due - self.t).total_seconds() / 60)
                for attempt in range(2):
                    if not self.emit(c.CaseResolved(case_no=no, owner=self.owner, result="已处置", update_id=uuid.uuid4().hex),
                                     "resolved", step_minutes=max(1.0, took)):
                        break
                    resolved_at = self.t
                    if attempt == 0 and rng.random() < 0.02:  # 返工
                        if self.emit(c.CaseReworked(case_no=no, owner=self.owner, note="现场未整改", by="operator:压测"),
                                     "rework", step_minutes=rng.uniform(60, 600)):
                            reworks += 1
                            dispatch("rework", self.owner)
                            took = rng.uniform(60, 600)
                            continue
                        break
                    on_time = resolved_at <= due
                    if self.emit(c.CaseClosed(case_no=no, owner=self.owner, outcome="resolved", result="已处置",
                                              by="operator:压测", closed_at=self.t + timedelta(hours=3), on_time=on_time),
                                 "closed", step_minutes=180):
                        closed_at, outcome = self.t, "resolved"
                        if rng.random() < 0.8 and self.emit(c.CaseSurveyAnswered(
                                case_no=no, survey_id=uuid.uuid4().hex, verdict=rng.choice(VERDICTS), channel="sms",
                                within_window=True), "closed", effect="noted", step_minutes=rng.uniform(60, 2000)):
                            verdict = orjson.loads(self.rows[-1][6])["verdict"]
                    break
        case = (self.case_id, no, self.state, self.category, self.grid, self.owner, "normal",
                "terminal" if coord else "hotline", reported_at, accepted_at, dispatched_at if dispatches else None,
                due if dispatches else None, closed_at, overdue_at, signed_at, resolved_at, outcome,
                on_time if closed_at else None, verdict, dispatches, reworks, len(self.rows), self.t)
        return self.rows, case


async def load(conn: asyncpg.Connection, n: int, first: datetime, now: datetime, street: dict) -> int:
    """n cases' lives; returns the number of events. Indexes are dropped for the load and built again after."""
    indexes = await conn.fetch(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = current_schema() AND i.tablename IN "
        "('case_events', 'cases') AND NOT EXISTS (SELECT 1 FROM pg_constraint k "
        "WHERE k.conindid = format('%I.%I', i.schemaname, i.indexname)::regclass)")
    for ix in indexes:
        await conn.execute(f'DROP INDEX "{ix["indexname"]}"')
    rng = random.Random(2026)
    events, started = 0, time.monotonic()
    for lo in range(0, n, CHUNK):
        rows, cases = [], []
        for i in range(lo, min(n, lo + CHUNK)):
            life_rows, case = Life(rng, i, first, street, now).live()
            rows.extend(life_rows)
            cases.append(case)
        await conn.copy_records_to_table("case_events", records=rows, columns=EVENT_COLUMNS)
        await conn.copy_records_to_table("cases", records=cases, columns=CASE_COLUMNS)
        events += len(rows)
        done = min(n, lo + CHUNK)
        print(f"  {done:>9,} / {n:,} cases, {events:,} events ({done / (time.monotonic() - started):,.0f} cases/s)",
              flush=True)
    for ix in indexes:
        print(f"  building {ix['indexname']}…", flush=True)
        await conn.execute(ix["indexdef"])
    print("  VACUUM ANALYZE…", flush=True)
    await conn.execute("VACUUM ANALYZE case_events")
    await conn.execute("VACUUM ANALYZE cases")
    return events


async def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    topics = Topics(settings.topic_prefix)
    street_data = load_street(settings.street_dir)
    units = street_data.level("unit")
    street = {
        "grids": [g.code for g in units],
        "community_of": {g.code: street_data.community_of(g.code).code for g in units},
        "categories": [(code, cat.owner) for code, cat in street_data.categories.items()],
        "worker_of": {g.code: f"W{k:03d}" for k, g in enumerate(units, 1)},
    }
    now = datetime.now(ZONE)
    first = (now - timedelta(days=args.days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    print(f"bench.stats {TAG}: {args.cases:,} cases over the {args.days} days to today ({first:%Y-%m-%d} – {now:%Y-%m-%d})")
    await ensure_topics(settings.kafka_bootstrap, topics.fixed())
    await migrate_all(("supervision",))
    conn = await asyncpg.connect(settings.database_url, server_settings={"search_path": settings.schema("supervision")})
    proc = None
    try:
        t0 = time.monotonic()
        if args.reuse:
            events = await conn.fetchval("SELECT count(*) FROM case_events")
            args.cases = await conn.fetchval("SELECT count(*) FROM cases")
            print(f"  reusing {args.cases:,} cases and {events:,} events of run {TAG}")
        else:
            events = await load(conn, args.cases, first, now, street)
            print(f"  loaded {events:,} events in {time.monotonic() - t0:.0f} s")
        token = f"bench-operator-{TAG}"
        port = free_port()
        env = dict(os.environ, WANGGE_SUPERVISION_PORT=str(port), WANGGE_LOG_LEVEL="WARNING", WANGGE_STATS_KEEP_SECONDS="1")
        # The operator credential, issued as the CLI does, and learnt by supervision from wangge.credentials.
        subprocess.run([sys.executable, "-m", "shared.credentials", "issue", "--role", "operator", "--name", "压测",
                        "--token", token], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
        proc = subprocess.Popen([sys.executable, "-m", "services.supervision", "--port", str(port)], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=open(REPO / ".local" / f"bench-stats-{TAG}.log", "wb"))
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, timeout=120, headers=headers) as http:
            for _ in range(600):
                try:
                    if (await http.get("/api/v1/stats", params={"from": f"{now:%Y-%m-%d}", "to": f"{now:%Y-%m-%d}",
                                                                "by": "owner"})).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None:
                    print(f"supervision exited ({proc.returncode}); see .local/bench-stats-{TAG}.log")
                    return 1
                await asyncio.sleep(0.2)
            else:
                print("supervision did not answer with the credential within 120 s")
                return 1
            # The refresher keeps the past days (31 a round); a running street keeps them as they pass.
            t_keep, past = time.monotonic(), (now.date() - first.date()).days
            while True:
                kept = await conn.fetchval("SELECT count(*) FROM stats_days_kept")
                print(f"  {kept:>4} / {past} past days kept ({time.monotonic() - t_keep:.0f} s)", flush=True)
                if kept >= past or proc.poll() is not None:
                    break
                await asyncio.sleep(5)
            print(f"  keeping {past} days took {time.monotonic() - t_keep:.0f} s (once; then a day at a time)")
            print()
            worst, ok = 0.0, True
            span = {"from": f"{first:%Y-%m-%d}", "to": f"{now:%Y-%m-%d}"}
            asks = [("/api/v1/stats", {**span, "by": by}) for by in ("owner", "community", "unit_grid", "coordinator", "category")]
            month = now.replace(day=1) - timedelta(days=1)
            asks += [("/api/v1/stats", {"from": f"{month:%Y-%m}-01", "to": f"{month:%Y-%m-%d}", "by": "community"}),
                     ("/api/v1/reports/ranking", {"month": f"{month:%Y-%m}"}),
                     ("/api/v1/reports/year", {"year": str(now.year)})]
            for path, params in asks:
                times = []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    try:
                        answer = await http.get(path, params=params)
                    except httpx.HTTPError as exc:  # the service gave up on the question (or died): a figure too
                        answer = httpx.Response(599, text=f"{type(exc).__name__}: {exc}")
                    times.append(time.perf_counter() - t)
                    if answer.status_code != 200:
                        break
                if answer.status_code != 200:
                    ok = False
                    print(f"{path:<22} {' '.join(f'{k}={v}' for k, v in params.items()):<44} HTTP {answer.status_code} after "
                          f"{times[-1] * 1000:.0f} ms: {answer.text[:120]}")
                    continue
                body = answer.json()
                total = body.get("total", {})
                best = min(times)
                worst = max(worst, best)
                ok &= best < 1.0
                what = " ".join(f"{k}={v}" for k, v in params.items())
                print(f"{path:<22} {what:<44} best {best * 1000:7.0f} ms  (of {args.repeat})  "
                      f"received={total.get('received', '-')} closed={total.get('closed', '-')} rows={len(body.get('rows', []))}")
        print(f"\n{args.cases:,} cases, {events:,} events in case_events, {args.days} days")
        print(f"goal: every figure of a year within 1000 ms → {'PASS' if ok else 'FAIL'} (slowest {worst * 1000:.0f} ms)")
        return 0 if ok else 1
    finally:
        stop_process(proc)
        await conn.close()
        if not (args.keep or args.reuse):
            await cleanup(settings, topics)
            print(f"(dropped schema {settings.schema('supervision')} and topics {topics.prefix}*)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stats",
        description="A year of a city's cases in supervision's history, and how long GET /api/v1/stats (each "
                    "grouping) and the year report take over it. Needs Kafka and PostgreSQL running (./dev infra); "
                    "uses its own schema and topics, dropped afterwards.")
    parser.add_argument("--cases", type=int, default=1_000_000, help="cases in the year (default 1,000,000)")
    parser.add_argument("--days", type=int, default=365, help="the cases' days, ending today (default 365)")
    parser.add_argument("--repeat", type=int, default=3, help="ask each question this often, keep the best (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the schema and topics for a look afterwards")
    parser.add_argument("--reuse", metavar="TAG", help="ask again over the history a --keep run left (its tag, "
                                                         "printed first); nothing is loaded, nothing dropped")
    args = parser.parse_args(argv)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())

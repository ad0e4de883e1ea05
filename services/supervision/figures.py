"""The street's figures for any period: the days kept are summed, the others counted, overdue_now is of the moment.

A period's figures are additive over its street days (docs/STATISTICS.md, "Kept per day"), so a year of a city
is 365 kept days summed plus today counted, instead of millions of events counted at every question. Every
figure still comes from the one SQL of adapters/stats.py: a day is kept by counting it exactly like any
period. The refresher (a worker) keeps past days and counts again the days that an event has marked since.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import date, datetime, timedelta
from typing import Any, Callable

import asyncpg

from services.supervision.adapters import stats as sql
from services.supervision.adapters import stats_days
from services.supervision.domain import stats
from services.supervision.domain.policy import StreetPolicy
from services.supervision.live_policy import LivePolicy
from shared.clock import Clock

log = logging.getLogger(__name__)

Grouped = list[tuple[str | None, dict[str, int]]]
LOCK = "wangge:stats-days"  # one refresher at a time, whatever the number of instances


def _runs(days: list[date]) -> list[tuple[date, date]]:
    """Sorted days as (first, last) stretches of consecutive days."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


class StreetFigures:
    """Figures per period and grouping, from kept days where they hold and from the events where they do not."""

    def __init__(self, pool_of: Callable[[], asyncpg.Pool], live: LivePolicy, clock: Clock | None = None):
        self._pool_of = pool_of
        self._clock = clock or Clock()  # the service's: overdue_now and "today" are of its moment
        # The street configuration in force (its work periods and sign-off limit), not the one loaded at start:
        # an admin's change is followed at once here, and by the other instances at their next deadline poll.
        self._live = live
        self._zone = live.policy.calendar.zone
        self._grid_community = stats.grid_communities(live.policy.communities)
        # Per configuration version: the SQL's digest, and per day the basis a day is kept on (a day kept under
        # another configuration is counted again).
        self._sql_digests: dict[int, str] = {}
        self._bases: dict[tuple[int, date], str] = {}

    @property
    def _policy(self) -> StreetPolicy:
        return self._live.policy

    def _sql_digest(self) -> str:
        version = self._policy.version
        if version not in self._sql_digests:
            digest = hashlib.sha256(repr(sorted(self._grid_community.items())).encode())
            for by in (*stats.BY, sql.EVERY_BY):  # the SQL text holds the sign-off limit and the work periods
                digest.update(sql.figures_sql(self.query(stats.Period(date(2026, 1, 1), date(2026, 1, 1), self._zone),
                                                         by, "period", self._clock.now())).encode())
            self._sql_digests[version] = digest.hexdigest()
        return self._sql_digests[version]

    def query(self, period: stats.Period, by: str, parts: str, at: datetime) -> sql.Query:
        """The SQL's question for one period."""
        calendar = self._policy.calendar
        sign_until = calendar.deadline(period.hi, *self._policy.sign_limit)
        seconds, wall = stats.limit_seconds(calendar, *self._policy.sign_limit)
        return sql.Query(period=period, by=by, sign_until=sign_until, sign_seconds=seconds, sign_wall=wall,
                         days=stats.work_days(calendar, period.first, sign_until.astimezone(self._zone).date()),
                         grid_community=self._grid_community, now=at, parts=parts)

    def basis(self, day: date) -> str:
        """How a day is counted now: the SQL, the grids' communities and the day's work calendar (to its
        sign-off window). A day kept on another basis is counted again."""
        key = (self._policy.version, day)
        if key not in self._bases:
            q = self.query(stats.Period(day, day, self._zone), "owner", "period", self._clock.now())
            self._bases[key] = hashlib.sha256(
                f"{self._sql_digest()}|{q.days!r}|{q.sign_until.isoformat()}".encode()).hexdigest()[:32]
        return self._bases[key]

    def today(self, at: datetime) -> date:
        return at.astimezone(self._zone).date()

    async def counted(self, period: stats.Period, by: str) -> tuple[Grouped, dict[str, int], datetime]:
        """[(key, counts)], the street's total counts and the moment overdue_now was counted."""
        at = self._clock.now()
        pool = self._pool_of()
        last_past = min(period.last, self.today(at) - timedelta(days=1))
        kept: list[date] = []
        if period.first <= last_past:
            found = await stats_days.kept_days(pool, period.first, last_past)
            kept = sorted(d for d, basis in found.items() if basis == self.basis(d))
        if not kept:  # nothing kept in it: one statement, as ever
            grouped, total = await sql.figures(pool, self.query(period, by, "all", at))
            return grouped, total, at
        per_key: dict[str | None, dict[str, int]] = {}

        def add(rows: Grouped | dict[str | None, dict[str, int]]) -> None:
            for key, counts in (rows.items() if isinstance(rows, dict) else rows):
                into = per_key.setdefault(key, dict.fromkeys(stats.COUNTS, 0))
                for name in stats.COUNTS:
                    into[name] += int(counts.get(name) or 0)

        kept_set = set(kept)
        every_day = [period.first + timedelta(days=i) for i in range((period.last - period.first).days + 1)]
        # The kept sum, the stretches counted from the events and overdue now: independent statements, each on
        # a connection of its own, so that PostgreSQL answers them side by side.
        stretches = [sql.figures(pool, self.query(stats.Period(first, last, self._zone), by, "period", at))
                     for first, last in _runs([d for d in every_day if d not in kept_set])]
        summed, live_now, *counted_stretches = await asyncio.gather(
            stats_days.summed(pool, by, kept), sql.figures(pool, self.query(period, by, "now", at)), *stretches)
        add(summed)
        for grouped, _ in counted_stretches:
            add(grouped)
        add(live_now[0])
        rows = list(per_key.items())  # a key with nothing counted stays, as the one statement leaves it
        total = dict.fromkeys(stats.COUNTS, 0)
        for _, counts in rows:
            for name in stats.COUNTS:
                total[name] += counts[name]
        return rows, total, at

    async def refresh(self, max_days: int = 31) -> int:
        """Keep up to `max_days` past days: marked ones first, then those kept on another basis, then the latest
        not kept yet; all under one snapshot, so that an event committed meanwhile leaves its mark for next time.
        Returns how many days were kept."""
        async with self._pool_of().acquire() as conn:
            async with conn.transaction(isolation="repeatable_read"):
                if not await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || $1))", LOCK):
                    return 0  # another instance is at it
                at = self._clock.now()
                today = self.today(at)
                seen = await stats_days.marks(conn, 10_000)
                todo: list[date] = []
                for day in sorted({m["day"] for m in seen}, reverse=True):
                    if day < today and day not in todo:
                        todo.append(day)
                if len(todo) < max_days:
                    for day, basis in sorted((await stats_days.all_kept(conn)).items(), reverse=True):
                        if len(todo) >= max_days:
                            break
                        if day not in todo and basis != self.basis(day):
                            todo.append(day)
                if len(todo) < max_days:
                    todo += [d for d in await stats_days.unkept_days(conn, self._zone.key, today, max_days)
                             if d not in todo][: max_days - len(todo)]
                todo = todo[:max_days]
                for day in todo:
                    by_rows = await sql.figures_by_every(
                        conn, self.query(stats.Period(day, day, self._zone), sql.EVERY_BY, "period", at))
                    await stats_days.keep_day(conn, day, self.basis(day), by_rows)
                done = set(todo)
                await stats_days.forget_marks(conn, [m["id"] for m in seen if m["day"] in done or m["day"] >= today])
        if todo:
            log.info("statistics: kept %d day(s), %s … %s", len(todo), min(todo), max(todo))
        return len(todo)


def figures_loop(figures: StreetFigures, seconds: float) -> Callable[[], Any]:
    """A worker for ServiceRuntime.worker: keep days every `seconds`, at once again while there is a backlog."""
    from shared.periodic import every

    return every(seconds, figures.refresh, "keeping the statistics' days", again_from=31)

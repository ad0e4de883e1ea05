"""SQL of the street's figures: one aggregation over supervision's case_events (and its read model for what
holds now), grouped by one key with FILTER aggregates and the street's total in the same pass (GROUPING SETS).
What each figure counts is docs/STATISTICS.md; the pure parts are domain/stats.py."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from shared.contracts.cases import FINAL_STATES
from services.supervision.domain.overdue import overdue_sql
from services.supervision.domain.stats import BY, COUNTS, SATISFIED_VERDICTS, Period, WorkDays

# The event types a period's figures read (effect moved or noted: a refused event changed nothing).
TYPES = ("case.reported", "case.accepted", "case.rejected", "case.dispatched", "case.signed", "case.resolved",
         "case.explained", "case.closed", "case.returned", "case.reworked", "case.extension-decided",
         "case.reopened", "case.overdue", "case.survey-answered", "case.urged")
DEADLINE_TYPES = ("case.dispatched", "case.extension-decided", "case.resumed")  # as in 005_stats.sql
EVERY_BY = "*"  # Query.by for every grouping at once (keeping a day)

# How each fact of the union below counts. `fact` is the event type or a derived fact's name.
_COUNT_SQL: dict[str, str] = {
    "received": "fact = 'case.reported'",
    "coordinator_reports": "fact = 'case.reported' AND data->'coordinator'->>'worker_id' IS NOT NULL",
    "accepted": "fact = 'case.accepted'",
    "rejected": "fact = 'case.rejected'",
    "dispatched": "fact = 'case.dispatched' AND coalesce(data->>'occasion', 'first') = 'first'",
    "dispatches": "fact = 'case.dispatched'",
    "signed_on_time": "fact = 'signed_on_time'",
    "resolved": "fact = 'case.resolved'",
    "explained": "fact = 'case.explained'",
    "closed": "fact = 'case.closed'",
    "closed_on_time": "fact = 'case.closed' AND (data->>'on_time')::boolean",
    "returned": "fact = 'case.returned'",
    "reworked": "fact = 'case.reworked'",
    "extended": "fact = 'case.extension-decided' AND (data->>'approved')::boolean",
    "reopened": "fact = 'case.reopened'",
    "went_overdue": "fact = 'case.overdue' AND coalesce(data->>'stage', 'handling') = 'handling'",
    "overdue_now": "fact = 'overdue_now'",
    "due": "fact = 'due'",
    "due_closed_on_time": "fact = 'due' AND flag",
    "surveyed": "fact = 'survey'",
    "surveyed_late": "fact = 'survey' AND NOT (data->>'within_window')::boolean",
    "satisfied": "fact = 'survey' AND data->>'verdict' = ANY($12::text[])",
    "fixed_on_the_spot": "fact = 'fixed_on_the_spot'",
    "urged": "fact = 'case.urged'",
}
assert set(_COUNT_SQL) == set(COUNTS)

# The group key of a fact, by `by`: c is the case's read-model row, g its unit grid's community, r its report.
_KEY_SQL = {
    "owner": "coalesce(f.owner, c.owner)",
    "unit_grid": "coalesce(c.unit_grid, f.data->>'unit_grid')",
    "community": "g.community",
    "category": "coalesce(c.category, f.data->>'category')",
    "coordinator": "r.worker_id",
}
assert set(_KEY_SQL) == set(BY)


@dataclass(frozen=True)
class Query:
    """One period's figures, grouped by `by`."""

    period: Period
    by: str
    sign_until: datetime          # the sign-off deadline of a dispatch at the very end of the period
    sign_seconds: float           # the sign-off limit: seconds of work time (or wall time if sign_wall)
    sign_wall: bool
    days: WorkDays                # the calendar from the period's first day to sign_until's
    grid_community: dict[str, str]
    now: datetime
    # "all": the period's figures and overdue_now; "period": without overdue_now (a day to keep, a stretch
    # counted beside kept days); "now": only overdue_now (the period's events are not read).
    parts: str = "all"


def _work_position(moment: str, day: str, periods: tuple[tuple[float, float], ...]) -> str:
    """SQL: work seconds from the span's start to `moment`, `day` being its row of the days table (the
    arithmetic of WorkDays.position; the periods are numbers from the street's calendar, not input)."""
    tod = f"extract(epoch FROM ({moment} AT TIME ZONE $10)::time)::float8"
    within = " + ".join(f"greatest(0, least({tod}, {float(end)!r}) - {float(start)!r})" for start, end in periods)
    return f"({day}.before + CASE WHEN {day}.workday THEN {within or '0'} ELSE 0 END)"


def _sign_condition(q: Query) -> tuple[str, str]:
    """(joins, condition) of 'signed within the sign-off limit of its dispatch'."""
    if q.sign_wall:
        return "", f"s.next_at - s.dispatched_at <= make_interval(secs => {float(q.sign_seconds)!r})"
    joins = ("JOIN days d1 ON d1.day = (s.dispatched_at AT TIME ZONE $10)::date "
             "JOIN days d2 ON d2.day = (s.next_at AT TIME ZONE $10)::date")
    condition = (f"{_work_position('s.next_at', 'd2', q.days.periods)} - {_work_position('s.dispatched_at', 'd1', q.days.periods)} "
                 f"<= {float(q.sign_seconds)!r}")
    return joins, condition


_PERIOD_FACTS = """
  SELECT case_id, type AS fact, data->>'owner' AS owner, NULL::boolean AS flag, data FROM inside
  WHERE type <> 'case.survey-answered'
  UNION ALL SELECT case_id, 'signed_on_time', owner, NULL, NULL FROM signed
  UNION ALL SELECT case_id, 'survey', NULL, NULL, data FROM survey
  UNION ALL SELECT case_id, 'fixed_on_the_spot', NULL, NULL, NULL FROM spot
  UNION ALL SELECT case_id, 'due', owner, on_time, NULL FROM due"""
_NOW_FACTS = "SELECT case_id, 'overdue_now' AS fact, owner, NULL::boolean AS flag, NULL::jsonb AS data FROM late"


def _facts(parts: str) -> str:
    """The facts counted: the period's, overdue now's, or both."""
    if parts == "period":
        return _PERIOD_FACTS
    if parts == "now":
        return _NOW_FACTS
    if parts == "all":
        return _PERIOD_FACTS + "\n  UNION ALL " + _NOW_FACTS.replace(" AS fact", "").replace(" AS flag", "").replace(" AS data", "")
    raise ValueError(f"parts: all, period or now, not {parts!r}")


def figures_sql(q: Query) -> str:
    """The one statement of a period's figures (parameters: see figures())."""
    sign_joins, sign_condition = _sign_condition(q)
    report_join = ("LEFT JOIN (SELECT e.case_id, e.data->'coordinator'->>'worker_id' AS worker_id FROM case_events e "
                   "WHERE e.type = 'case.reported' AND e.effect = 'moved' "
                   "AND e.case_id IN (SELECT case_id FROM facts)) r ON r.case_id = f.case_id"
                   if q.by in ("coordinator", EVERY_BY) else "")
    counts = ",\n       ".join(f"count(*) FILTER (WHERE {cond}) AS {name}" for name, cond in _COUNT_SQL.items())
    if q.by == EVERY_BY:  # every grouping in one pass (a day to keep): one grouping set per key, no total
        keys = ", ".join(f"{_KEY_SQL[by]} AS k_{by}" for by in BY)
        select_keys = ", ".join(f"k_{by}" for by in BY) + ", " + ", ".join(
            f"GROUPING(k_{by}) = 0 AS g_{by}" for by in BY) + ", false AS is_total"
        sets = ", ".join(f"(k_{by})" for by in BY)
    else:
        keys, select_keys, sets = f"{_KEY_SQL[q.by]} AS key", "key, GROUPING(key) = 1 AS is_total", "(key), ()"
    return f"""
WITH grid_map AS (SELECT m.unit_grid, m.community FROM unnest($1::text[], $2::text[]) AS m(unit_grid, community)),
days AS (SELECT d.day, d.before, d.workday FROM unnest($3::date[], $4::float8[], $5::boolean[]) AS d(day, before, workday)),
-- one range scan per type: the period's events, and signings and re-dispatches up to the last sign-off deadline
w AS (
  SELECT e.seq, e.case_id, e.type, e.occurred_at, e.data FROM case_events e
  WHERE e.type = ANY($6::text[]) AND e.occurred_at >= $7 AND e.occurred_at < $9 AND e.effect IN ('moved', 'noted')),
inside AS (SELECT * FROM w WHERE occurred_at < $8),
-- 签收: each first dispatch of the period and what came next, a signing or another dispatch
steps AS (
  SELECT case_id, type, occurred_at, data->>'owner' AS owner, data->>'occasion' AS occasion,
         (data->>'dispatched_at')::timestamptz AS dispatched_at,
         lead(type) OVER c AS next_type, lead(occurred_at) OVER c AS next_at
  FROM w WHERE type IN ('case.dispatched', 'case.signed') WINDOW c AS (PARTITION BY case_id ORDER BY seq)),
signed AS (
  SELECT s.case_id, s.owner FROM steps s {sign_joins}
  WHERE s.type = 'case.dispatched' AND coalesce(s.occasion, 'first') = 'first' AND s.occurred_at < $8
    AND s.next_type = 'case.signed' AND {sign_condition}),
-- 回访: each survey once, by its final answer, on the day of that answer (so that days add up to periods)
survey AS (
  SELECT DISTINCT ON (i.data->>'survey_id') i.case_id, i.data FROM inside i
  WHERE i.type = 'case.survey-answered'
    AND NOT EXISTS (SELECT 1 FROM case_events later
                    WHERE later.type = 'case.survey-answered' AND later.data->>'survey_id' = i.data->>'survey_id'
                      AND (later.occurred_at, later.seq) > (i.occurred_at, i.seq) AND later.effect IN ('moved', 'noted'))
  ORDER BY i.data->>'survey_id', i.occurred_at DESC, i.seq DESC),
-- 自行处置: a coordinator's report fixed on the spot (case.reported carries resolved_on_the_spot), on its day
spot AS (
  SELECT case_id FROM inside
  WHERE type = 'case.reported' AND jsonb_typeof(data->'resolved_on_the_spot') = 'object'),
-- 应办结: handlings (dispatch to next dispatch) whose deadline in force falls in the period, held to it
due_cases AS (
  SELECT DISTINCT case_id FROM case_events
  WHERE type IN ('case.dispatched', 'case.extension-decided', 'case.resumed') AND effect IN ('moved', 'noted')
    AND stats_due(data) >= $7 AND stats_due(data) < $8),
due_events AS (
  SELECT e.case_id, e.seq, e.type, e.occurred_at, e.data,
         count(*) FILTER (WHERE e.type = 'case.dispatched') OVER (PARTITION BY e.case_id ORDER BY e.seq) AS handling
  FROM case_events e JOIN due_cases USING (case_id)
  WHERE e.type IN ('case.dispatched', 'case.extension-decided', 'case.resumed', 'case.returned', 'case.closed')
    AND e.effect IN ('moved', 'noted')),
handlings AS (
  SELECT case_id, handling,
         (array_agg(data->>'owner' ORDER BY seq) FILTER (WHERE type = 'case.dispatched'))[1] AS owner,
         (array_agg(stats_due(data) ORDER BY seq DESC) FILTER (WHERE type IN ('case.dispatched', 'case.resumed')
            OR (type = 'case.extension-decided' AND (data->>'approved')::boolean)))[1] AS deadline,
         min(occurred_at) FILTER (WHERE type = 'case.dispatched') AS started_at,
         min(occurred_at) FILTER (WHERE type = 'case.returned') AS returned_at,
         coalesce(bool_or(type = 'case.closed' AND (data->>'on_time')::boolean), false) AS on_time
  FROM due_events WHERE handling > 0 GROUP BY case_id, handling),
due AS (
  SELECT case_id, owner, on_time FROM (
    SELECT h.*, lead(started_at) OVER (PARTITION BY case_id ORDER BY handling) AS next_at FROM handlings h) h
  WHERE deadline >= $7 AND deadline < $8 AND coalesce(least(returned_at, next_at), 'infinity') >= deadline),
-- what holds now (read model): overdue at $11 by the one rule (domain/overdue.py)
late AS (SELECT case_id, owner FROM cases WHERE {overdue_sql("$11")}),
facts AS ({_facts(q.parts)}),
keyed AS (
  SELECT {keys}, f.fact, f.flag, f.data
  FROM facts f LEFT JOIN cases c ON c.case_id = f.case_id
  LEFT JOIN grid_map g ON g.unit_grid = coalesce(c.unit_grid, f.data->>'unit_grid')
  {report_join})
SELECT {select_keys},
       {counts}
FROM keyed GROUP BY GROUPING SETS ({sets})"""


async def _rows(conn: asyncpg.Connection | asyncpg.Pool, q: Query) -> list[asyncpg.Record]:
    grids = sorted(q.grid_community)
    return await conn.fetch(
        figures_sql(q),
        grids, [q.grid_community[g] for g in grids],                     # $1 $2
        list(q.days.days), list(q.days.before), list(q.days.workday),   # $3 $4 $5
        list(TYPES), q.period.lo, q.period.hi, max(q.sign_until, q.period.hi),  # $6 $7 $8 $9
        q.period.zone.key, q.now,                                        # $10 $11
        list(SATISFIED_VERDICTS),                                        # $12
    )


async def figures(conn: asyncpg.Connection | asyncpg.Pool, q: Query) -> tuple[list[tuple[str | None, dict]], dict]:
    """[(key, counts)] and the street's total counts of one period."""
    assert q.by != EVERY_BY, "figures_by_every() answers every grouping"
    grouped, total = [], {name: 0 for name in COUNTS}
    for row in await _rows(conn, q):
        counts = {name: row[name] for name in COUNTS}
        if row["is_total"]:
            total = counts
        else:
            grouped.append((row["key"], counts))
    return grouped, total


async def figures_by_every(conn: asyncpg.Connection | asyncpg.Pool, q: Query) -> dict[str, list[tuple[str | None, dict]]]:
    """{by: [(key, counts)]} of one period for every grouping, in one pass (q.by is EVERY_BY)."""
    assert q.by == EVERY_BY
    out: dict[str, list[tuple[str | None, dict]]] = {by: [] for by in BY}
    for row in await _rows(conn, q):
        by = next(b for b in BY if row[f"g_{b}"])
        out[by].append((row[f"k_{by}"], {name: row[name] for name in COUNTS}))
    return out


# ---- the Monday meeting's list --------------------------------------------------------------------

async def weekly(conn: asyncpg.Connection | asyncpg.Pool, grids: list[str], period: Period,
                 now: datetime) -> list[dict[str, Any]]:
    """Per case of these unit grids: reported in the week, open now, late (open past its deadline now, or
    closed in the week not on time). One row per case that is any of these, with its flags."""
    rows = await conn.fetch(
        f"""
WITH reported AS (
  SELECT DISTINCT e.case_id FROM case_events e
  WHERE e.type = 'case.reported' AND e.effect = 'moved' AND e.occurred_at >= $2 AND e.occurred_at < $3),
closed_late AS (
  SELECT DISTINCT e.case_id FROM case_events e
  WHERE e.type = 'case.closed' AND e.effect = 'moved' AND e.occurred_at >= $2 AND e.occurred_at < $3
    AND NOT (e.data->>'on_time')::boolean)
SELECT c.case_id, c.case_no, c.unit_grid, c.state,
       c.case_id IN (SELECT case_id FROM reported) AS reported,
       c.state IS NOT NULL AND NOT c.state = ANY($5::text[]) AS open,
       {overdue_sql("$4", "c")} OR c.case_id IN (SELECT case_id FROM closed_late) AS late
FROM cases c
WHERE c.unit_grid = ANY($1::text[])
  AND (c.case_id IN (SELECT case_id FROM reported) OR c.case_id IN (SELECT case_id FROM closed_late)
       OR (c.state IS NOT NULL AND NOT c.state = ANY($5::text[])))
ORDER BY c.unit_grid, c.case_no""",
        grids, period.lo, period.hi, now, list(FINAL_STATES),
    )
    return [dict(r) for r in rows]

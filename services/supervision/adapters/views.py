"""Read-only SQL for the HTTP views: one case, lists, statistics. Times come back in the street's zone."""
from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

import asyncpg

from services.supervision.domain.clocks import FINISHING_STATES
from services.supervision.domain.overdue import is_overdue, overdue_sql
from services.supervision.domain.task_cursor import TaskPosition

CASE_COLUMNS = """case_id, case_no, state, category, unit_grid, owner, owner_name, priority, source, description,
    reported_at, accepted_at, dispatched_at, due_at, closed_at, warned_at, overdue_at, escalation_level,
    merged_into_case_no, rejection_reason, signed_at, resolved_at, result, result_media, explanation, return_reason,
    suspend_reason, extension_until, extension_reason, extension_state, check_note, close_outcome, closed_on_time,
    last_verdict, reopened_count, dispatch_count, rework_count, dispatch_note, reported_by, on_the_spot, events_seen,
    last_event_at, updated_at"""
CLOCK_COLUMNS = """kind, state, owner, limit_value, limit_unit, started_at, warn_at, due_at, warned_at, overdue_at,
    escalation_level, next_escalation_at, stopped_at, stop_reason, suspended_at, calendar_assumed"""


def _plain(row: asyncpg.Record, zone: tzinfo) -> dict[str, Any]:
    """A row as a dict, every timestamp in the street's zone (ISO 8601 with +08:00 once serialised)."""
    return {k: (v.astimezone(zone) if isinstance(v, datetime) else v) for k, v in row.items()}


async def case_detail(pool: asyncpg.Pool, case_no: str, zone: tzinfo,
                      at: datetime | None = None) -> dict[str, Any] | None:
    """The case numbered case_no with its clock and its history, or None; `overdue` at `at` (domain/overdue.py)."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT {CASE_COLUMNS} FROM cases WHERE case_no = $1 ORDER BY updated_at DESC LIMIT 1", case_no
        )
        if row is None:
            return None
        clocks = await conn.fetch(f"SELECT {CLOCK_COLUMNS} FROM clocks WHERE case_id = $1", row["case_id"])
        history = await conn.fetch(
            """SELECT event_id AS id, type, version, occurred_at, source, effect, state_after, note, data
               FROM case_events WHERE case_id = $1 ORDER BY seq""",
            row["case_id"],
        )
    overdue = at is not None and is_overdue(row["state"], row["due_at"], row["overdue_at"] is not None, at)
    return {
        **_plain(row, zone),
        "overdue": overdue,
        "clock": next((_plain(c, zone) for c in clocks if c["kind"] == "handling"), None),
        "stages": [_plain(c, zone) for c in clocks],
        "history": [_plain(h, zone) for h in history],
    }


async def list_cases(pool: asyncpg.Pool, zone: tzinfo, *, state: str | None = None, owner: str | None = None,
                     unit_grids: list[str] | None = None, category: str | None = None, overdue: bool | None = None,
                     due_before: datetime | None = None, limit: int = 50,
                     at: datetime) -> list[dict[str, Any]]:
    """Cases, most recently changed first, filtered (each filter optional; unit_grids: any of these grids;
    overdue: by domain/overdue.py's rule at `at`, the service's clock). Each row says whether it is overdue then."""
    rows = await pool.fetch(
        f"""SELECT {CASE_COLUMNS}, {overdue_sql("$8::timestamptz")} AS overdue FROM cases
            WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR owner = $2)
              AND ($3::text[] IS NULL OR unit_grid = ANY($3)) AND ($4::text IS NULL OR category = $4)
              AND ($5::boolean IS NULL OR {overdue_sql("$8::timestamptz")} = $5)
              AND ($6::timestamptz IS NULL OR due_at < $6)
            ORDER BY updated_at DESC LIMIT $7""",
        state, owner, unit_grids, category, overdue, due_before, limit, at,
    )
    return [_plain(r, zone) for r in rows]


async def summary(pool: asyncpg.Pool, at: datetime) -> dict[str, Any]:
    """Counts by state, clocks running, cases overdue at `at` (domain/overdue.py), and the share of finished cases
    finished on time."""
    async with pool.acquire() as conn:
        by_state: dict[str, int] = {}
        overdue_now = 0
        for r in await conn.fetch(f"SELECT state, count(*) AS n, count(*) FILTER (WHERE {overdue_sql('$1')}) AS late "
                                  "FROM cases GROUP BY state ORDER BY state", at):
            by_state[r["state"] or "unknown"] = r["n"]
            overdue_now += r["late"]
        clocks = await conn.fetchrow(
            """SELECT count(*) FILTER (WHERE state = 'running') AS running,
                      count(*) FILTER (WHERE state = 'stopped' AND stop_reason = ANY($1::text[])) AS finished,
                      count(*) FILTER (WHERE state = 'stopped' AND stop_reason = ANY($1::text[])
                                       AND stopped_at <= due_at) AS finished_on_time
               FROM clocks WHERE kind = 'handling'""",
            sorted(FINISHING_STATES),
        )
    finished = clocks["finished"]
    return {
        "total": sum(by_state.values()),
        "by_state": by_state,
        "running_clocks": clocks["running"],
        "overdue_now": overdue_now,
        "finished": finished,
        "finished_on_time": clocks["finished_on_time"],
        "on_time_share": round(clocks["finished_on_time"] / finished, 4) if finished else None,
    }


# The states in which a task is still in its owner's hands (resolved/explained wait for the check); migration 009's
# index is on exactly these.
OWNER_STATES = ("dispatched", "in_progress", "suspended", "resolved", "explained")


# The moment 超期 is judged at, in the task SQL below: each query puts its own parameter in its place.
_AT = "__at__"
TASK_COLUMNS = """case_id, case_no, state, category, unit_grid, priority, description, dispatched_at, due_at,
    signed_at, dispatch_note, extension_state, extension_until, suspend_reason, check_note, overdue_at, rework_count,
    reopened_count, resolved_at, """ + overdue_sql(_AT) + " AS overdue"
# The list's order, as migration 009's index holds it: a task without a deadline comes last.
TASK_ORDER = "COALESCE(due_at, 'infinity'::timestamptz), COALESCE(case_no, ''), case_id"
# The same keys read backwards (GET /api/v1/tasks?order=due_last): the index serves it scanned from its end.
TASK_ORDER_DESC = "COALESCE(due_at, 'infinity'::timestamptz) DESC, COALESCE(case_no, '') DESC, case_id DESC"
OPEN_TASK = "owner = $1 AND state IN (" + ", ".join(f"'{s}'" for s in OWNER_STATES) + ")"
# The owner page's filters (GET /api/v1/tasks?filter=): each narrows the open list above, in the same order, so the
# same keyset paging reaches every task of the filter. Fixed SQL only: the name is checked against these keys.
_HANDLING = "state IN ('dispatched', 'in_progress', 'suspended')"
TASK_FILTERS: dict[str, str] = {
    "new": "state = 'dispatched'",  # not signed (签收) yet
    "in_progress": "state IN ('in_progress', 'suspended')",
    # back in the owner's hands after a failed check (返工) or the resident's reopening
    "returned": f"(rework_count > 0 OR reopened_count > 0) AND {_HANDLING}",
    "extension": "extension_state = 'pending'",
    "overdue": overdue_sql(_AT),  # domain/overdue.py's rule, at the moment asked
    "checking": "state IN ('resolved', 'explained')",  # done, waiting for the on-site check
}
# The last 督办 by hand of this holder, so the list shows it without opening the task.
_LAST_URGE = """LEFT JOIN LATERAL (
        SELECT e.occurred_at AS urged_at, e.data->>'note' AS urge_note FROM case_events e
        WHERE e.case_id = t.case_id AND e.type = 'case.urged' AND e.effect <> 'refused' AND e.data->>'owner' = $1
        ORDER BY e.seq DESC LIMIT 1) u ON true"""


def _at_parameter(sql: str, number: int) -> str:
    return sql.replace(_AT, f"${number}::timestamptz")


async def owner_tasks(pool: asyncpg.Pool, owner: str, zone: tzinfo, limit: int,
                      after: TaskPosition | None = None, only: str | None = None, order: str = "due_first", *,
                      at: datetime) -> tuple[list[dict[str, Any]], TaskPosition | None]:
    """One page of the owner's open tasks (only: one of TASK_FILTERS), the nearest deadline first (order due_last:
    the farthest first), starting after `after`; and the position of its last task if more follow (else None).
    `overdue` as at `at`."""
    narrow = f" AND {TASK_FILTERS[only]}" if only else ""
    # Due last is the same order read backwards: every key descending, so migration 009's index is scanned
    # backwards, and "after" the cursor is "below" it.
    backwards = order == "due_last"
    ordered = TASK_ORDER_DESC if backwards else TASK_ORDER
    beyond = "<" if backwards else ">"
    # The page is read from migration 009's index first; the last urge is looked up for its rows only.
    if after is None:
        page_sql = f"SELECT {TASK_COLUMNS} FROM cases WHERE {OPEN_TASK}{narrow} ORDER BY {ordered} LIMIT $2"
        args: tuple[Any, ...] = (owner, limit + 1)
    else:
        page_sql = f"""SELECT {TASK_COLUMNS} FROM cases WHERE {OPEN_TASK}{narrow}
                  AND ({TASK_ORDER}) {beyond} (COALESCE($2::timestamptz, 'infinity'::timestamptz), $3::text, $4::text)
                ORDER BY {ordered} LIMIT $5"""
        args = (owner, after.due_at, after.case_no, after.case_id, limit + 1)
    page_sql, args = _at_parameter(page_sql, len(args) + 1), (*args, at)
    rows = await pool.fetch(f"SELECT t.*, u.urged_at, u.urge_note FROM ({page_sql}) t {_LAST_URGE} "
                            f"ORDER BY {ordered}", *args)
    page = rows[:limit]
    more = len(rows) > limit
    last = page[-1] if page else None
    position = TaskPosition(last["due_at"], last["case_no"] or "", last["case_id"], order) if more and last else None
    return [_plain(r, zone) for r in page], position


# What of an event's data its owner sees in the task's history: the facts of the work, never who reported it
# (case.reported's reporter is shown once, masked, at the top) nor operators' names.
_HISTORY_FIELDS = ("note", "reason", "result", "explanation", "until", "due_at", "media", "approved", "occasion",
                   "level", "stage", "passed", "category", "unit_grid", "text")  # text: a resident's comment


async def owner_task(pool: asyncpg.Pool, owner: str, case_no: str, zone: tzinfo, *,
                     at: datetime) -> dict[str, Any] | None:
    """One task of `owner` (a case it holds, open or finished) as its page shows it, or None if it is not its task:
    the task's columns, where it is, the report's photos and masked reporter, the owner's own clocks and the
    history with only the work's facts."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(_at_parameter(
            f"""SELECT {TASK_COLUMNS}, result, result_media, explanation, return_reason, extension_reason, closed_at
                FROM cases WHERE case_no = $1 AND owner = $2 ORDER BY updated_at DESC LIMIT 1""", 3),
            case_no, owner, at)
        if row is None:
            return None
        place = await conn.fetchrow(
            """SELECT e.data->>'address' AS address, e.data->'location' AS location FROM case_events e
               WHERE e.case_id = $1 AND e.type = ANY($2::text[]) AND e.effect <> 'refused'
                 AND (e.data->>'address' IS NOT NULL OR jsonb_typeof(e.data->'location') = 'object')
               ORDER BY e.seq DESC LIMIT 1""", row["case_id"], ["case.reported", "case.accepted", "case.located"])
        reported = await conn.fetchrow(
            """SELECT e.data->'media' AS media, e.data->'reporter' AS reporter, e.data->>'observed_at' AS observed_at
               FROM case_events e WHERE e.case_id = $1 AND e.type = 'case.reported' ORDER BY e.seq LIMIT 1""",
            row["case_id"])
        clocks = await conn.fetch(f"SELECT {CLOCK_COLUMNS} FROM clocks WHERE case_id = $1 AND owner = $2",
                                  row["case_id"], owner)
        history = await conn.fetch(
            """SELECT type, occurred_at, effect, state_after, data FROM case_events
               WHERE case_id = $1 AND type <> 'case.reported' ORDER BY seq""", row["case_id"])
    reporter = reported["reporter"] if reported and isinstance(reported["reporter"], dict) else None
    return {
        **_plain(row, zone),
        "address": place["address"] if place else None,
        "location": place["location"] if place and isinstance(place["location"], dict) else None,
        "media": reported["media"] if reported and isinstance(reported["media"], list) else [],
        # masked by intake before it ever reached wangge.cases (李** / 139****1001)
        "reporter": {"name": reporter.get("name"), "phone": reporter.get("phone")} if reporter else None,
        "stages": [_plain(c, zone) for c in clocks],
        "history": [{**_plain(h, zone), "data": {k: v for k, v in (h["data"] or {}).items() if k in _HISTORY_FIELDS}}
                    for h in history],
    }

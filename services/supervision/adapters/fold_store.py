"""Multi-row SQL of the set-based case log: a batch's cases locked, its history, case rows, day marks and clocks each
written by one statement (the rows passed as one JSON document, so that timestamps, lists and objects need no
array types of their own)."""
from __future__ import annotations

from datetime import date
from typing import Any, Iterable, Sequence

import asyncpg
import orjson

from services.supervision.adapters.stats import DEADLINE_TYPES
from services.supervision.domain.batch_fold import COUNTERS, CaseRow, CaseView
from services.supervision.domain.read_model import COLUMNS


def _json(rows: Iterable[Any]) -> str:
    return orjson.dumps(list(rows)).decode()


async def lock_cases(conn: asyncpg.Connection, case_ids: Sequence[str]) -> dict[str, CaseView]:
    """The batch's known cases, their rows locked for this transaction (in one order, so that two transactions
    locking overlapping sets cannot deadlock)."""
    rows = await conn.fetch(
        """SELECT case_id, state, case_no, category FROM cases WHERE case_id = ANY($1::text[])
           ORDER BY case_id FOR UPDATE""", sorted(set(case_ids)))
    return {r["case_id"]: CaseView(r["state"], r["case_no"], r["category"], known=True) for r in rows}


async def append_history(conn: asyncpg.Connection, history: list[dict[str, Any]]) -> None:
    """Every event as received (contacts masked) with what it did, in the batch's order (seq follows it)."""
    await conn.execute(
        """INSERT INTO case_events (event_id, case_id, type, version, occurred_at, source, data, effect, state_after,
                                    note)
           SELECT r.event_id, r.case_id, r.type, r.version, r.occurred_at, r.source, r.data, r.effect, r.state_after,
                  r.note
           FROM jsonb_array_elements($1::text::jsonb) WITH ORDINALITY AS j(doc, n),
                jsonb_populate_record(NULL::case_events, j.doc) AS r
           ORDER BY j.n
           ON CONFLICT (event_id) DO NOTHING""", _json(history))


async def create_cases(conn: asyncpg.Connection, case_ids: list[str]) -> None:
    """Rows for cases seen for the first time (with the table's defaults; save_cases fills them in)."""
    if case_ids:
        await conn.execute("INSERT INTO cases (case_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING", case_ids)


def _set(name: str) -> str:
    if name in COUNTERS:
        return f"{name} = c.{name} + COALESCE(r.{name}, 0)"
    # A column the batch's events did not name keeps its value; one they set to null is cleared.
    return f"{name} = CASE WHEN j.doc ? '{name}' THEN r.{name} ELSE c.{name} END"


_SAVE = f"""UPDATE cases c SET
    case_no = COALESCE(c.case_no, r.case_no),
    state = r.state,
    last_event_at = GREATEST(c.last_event_at, r.last_event_at),
    events_seen = c.events_seen + r.events_seen,
    {", ".join(_set(name) for name in COLUMNS)},
    updated_at = now()
  FROM jsonb_array_elements($1::text::jsonb) AS j(doc), jsonb_populate_record(NULL::cases, j.doc) AS r
  WHERE c.case_id = r.case_id"""


async def save_cases(conn: asyncpg.Connection, rows: Iterable[CaseRow]) -> None:
    """Each case's merged changes of the batch, one statement for all (their rows exist and are locked)."""
    await conn.execute(_SAVE, _json(row.as_json() for row in rows))


async def mark_case_days(conn: asyncpg.Connection, case_ids: list[str], zone: str, today: date) -> None:
    """Mark every past street day (before `today`) on which one of these cases has an event or a deadline: their
    kept figures may change with what was just folded (stats_days.mark_case_days, for a set of cases)."""
    if not case_ids:
        return
    await conn.execute(
        """INSERT INTO stats_marks (day)
           SELECT DISTINCT d FROM (
             SELECT (occurred_at AT TIME ZONE $2)::date AS d FROM case_events WHERE case_id = ANY($1::text[])
             UNION SELECT (stats_due(data) AT TIME ZONE $2)::date FROM case_events
               WHERE case_id = ANY($1::text[]) AND type = ANY($4::text[])) days
           WHERE d < $3""",
        case_ids, zone, today, list(DEADLINE_TYPES),
    )


async def open_clocks(conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> None:
    """Start these clocks; a re-dispatch replaces the previous one of its kind, warnings included (this is
    the one place a clock is started; each (case, kind) at most once)."""
    await conn.execute(
        """INSERT INTO clocks (case_id, kind, case_no, owner, category, limit_value, limit_unit,
                               started_at, warn_at, due_at, state, opened_by, calendar_assumed)
           SELECT s.case_id, s.kind, s.case_no, s.owner, s.category, s.limit_value, s.limit_unit,
                  s.started_at, s.warn_at, s.due_at, 'running', s.opened_by, s.calendar_assumed
           FROM jsonb_to_recordset($1::text::jsonb) AS s(
               case_id text, kind text, case_no text, owner text, category text, limit_value double precision,
               limit_unit text, started_at timestamptz, warn_at timestamptz, due_at timestamptz, opened_by text,
               calendar_assumed boolean)
           ON CONFLICT (case_id, kind) DO UPDATE SET
               case_no = EXCLUDED.case_no, owner = EXCLUDED.owner, category = EXCLUDED.category,
               limit_value = EXCLUDED.limit_value, limit_unit = EXCLUDED.limit_unit,
               started_at = EXCLUDED.started_at, warn_at = EXCLUDED.warn_at, due_at = EXCLUDED.due_at,
               state = 'running', warned_at = NULL, overdue_at = NULL, escalation_level = NULL,
               stopped_at = NULL, stop_reason = NULL, opened_by = EXCLUDED.opened_by, suspended_at = NULL,
               due_left_s = NULL, warn_left_s = NULL, fault = NULL, faulted_at = NULL,
               next_escalation_at = NULL, calendar_assumed = EXCLUDED.calendar_assumed, updated_at = now()""",
        _json(rows))


async def stop_clocks(conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> None:
    """Stop these running (or suspended) clocks — rows of (case_id, kind, at, reason); a kind that does not run is
    left alone (as clock_store.stop_clocks, for a set)."""
    await conn.execute(
        """UPDATE clocks SET state = 'stopped', stopped_at = s.at, stop_reason = s.reason, next_escalation_at = NULL,
                             updated_at = now()
           FROM jsonb_to_recordset($1::text::jsonb) AS s(case_id text, kind text, at timestamptz, reason text)
           WHERE clocks.case_id = s.case_id AND clocks.kind = s.kind AND clocks.state IN ('running', 'suspended')""",
        _json(rows))


"""SQL of the figures kept per street day (migration 008): marking the days an event may change, keeping a day,
and summing kept days. What is kept, and why the sums are exact, is docs/STATISTICS.md ("Kept per day")."""
from __future__ import annotations

from datetime import date

import asyncpg

from services.supervision.adapters.stats import DEADLINE_TYPES
from services.supervision.domain.stats import COUNTS

# The position of each count in stats_days.counts (PostgreSQL arrays count from 1).
_SUMS = ", ".join(f"sum(counts[{i}])::bigint AS {name}" for i, name in enumerate(COUNTS, 1))


async def mark_case_days(conn: asyncpg.Connection, case_id: str, zone: str, today: date) -> None:
    """Mark every past street day (before `today`) on which this case has an event or a deadline: their kept
    figures may change with what was just folded for it (one statement, from the case's own index entries).
    Kept or not: a day being kept right now by the refresher, under a snapshot without this event, must be
    counted again once this commits."""
    await conn.execute(
        """INSERT INTO stats_marks (day)
           SELECT DISTINCT d FROM (
             SELECT (occurred_at AT TIME ZONE $2)::date AS d FROM case_events WHERE case_id = $1
             UNION SELECT (stats_due(data) AT TIME ZONE $2)::date FROM case_events
               WHERE case_id = $1 AND type = ANY($4::text[])) days
           WHERE d < $3""",
        case_id, zone, today, list(DEADLINE_TYPES),
    )


async def kept_days(conn: asyncpg.Connection | asyncpg.Pool, first: date, last: date) -> dict[date, str]:
    """The days of first..last whose figures are kept and unmarked since, with the basis they were counted on."""
    rows = await conn.fetch(
        """SELECT k.day, k.basis FROM stats_days_kept k WHERE k.day BETWEEN $1 AND $2
             AND NOT EXISTS (SELECT 1 FROM stats_marks m WHERE m.day = k.day)""", first, last)
    return {r["day"]: r["basis"] for r in rows}


async def all_kept(conn: asyncpg.Connection) -> dict[date, str]:
    """Every kept day with its basis."""
    return {r["day"]: r["basis"] for r in await conn.fetch("SELECT day, basis FROM stats_days_kept")}


async def summed(conn: asyncpg.Connection | asyncpg.Pool, by: str, days: list[date]) -> dict[str | None, dict[str, int]]:
    """The kept figures of these days, summed per key."""
    if not days:
        return {}
    rows = await conn.fetch(f"SELECT key, {_SUMS} FROM stats_days WHERE by = $1 AND day = ANY($2::date[]) GROUP BY key",
                            by, days)
    return {r["key"]: {name: r[name] for name in COUNTS} for r in rows}


async def marks(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Marks to act on (id, day), oldest first."""
    return await conn.fetch("SELECT id, day FROM stats_marks ORDER BY id LIMIT $1", limit)


async def unkept_days(conn: asyncpg.Connection, zone: str, before: date, limit: int) -> list[date]:
    """Past days since the first event whose figures are not kept yet, latest first (the ones asked most)."""
    rows = await conn.fetch(
        """WITH span AS (SELECT (min(occurred_at) AT TIME ZONE $3)::date AS first FROM case_events)
           SELECT d::date AS day FROM span, generate_series(span.first, $1::date - 1, interval '1 day') d
           WHERE span.first IS NOT NULL AND NOT EXISTS (SELECT 1 FROM stats_days_kept k WHERE k.day = d::date)
           ORDER BY d DESC LIMIT $2""", before, limit, zone)
    return [r["day"] for r in rows]


async def keep_day(conn: asyncpg.Connection, day: date, basis: str,
                   by_rows: dict[str, list[tuple[str | None, dict[str, int]]]]) -> None:
    """Replace the kept figures of one day with these (per grouping: [(key, counts)]) and record it kept."""
    await conn.execute("DELETE FROM stats_days WHERE day = $1", day)
    records = [(day, by, key, [int(counts[name]) for name in COUNTS])
               for by, rows in by_rows.items() for key, counts in rows]
    if records:
        await conn.copy_records_to_table("stats_days", records=records, columns=["day", "by", "key", "counts"])
    await conn.execute("""INSERT INTO stats_days_kept (day, basis) VALUES ($1, $2)
                          ON CONFLICT (day) DO UPDATE SET basis = EXCLUDED.basis, counted_at = now()""", day, basis)


async def forget_marks(conn: asyncpg.Connection, ids: list[int]) -> None:
    """Delete the marks acted on (only those: a mark made meanwhile stays for the next round)."""
    if ids:
        await conn.execute("DELETE FROM stats_marks WHERE id = ANY($1::bigint[])", ids)



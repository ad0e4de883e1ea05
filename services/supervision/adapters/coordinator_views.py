"""Read-only SQL of the coordinator's screen: their own reports (keyset pages) and the checks of their grids."""
from __future__ import annotations

from datetime import tzinfo
from typing import Any

import asyncpg

from services.supervision.adapters.views import _plain
from services.supervision.domain.report_cursor import ReportPosition

REPORT_COLUMNS = """case_id, case_no, state, category, unit_grid, description, address, reported_at, report_media,
    owner, owner_name, resolved_at, result, close_outcome, on_the_spot, rejection_reason, merged_into_case_no"""
# The order of migration 011's cases_by_reporter index: newest first.
REPORT_ORDER = "reported_at DESC, case_id DESC"
CHECK_COLUMNS = """case_id, case_no, state, category, unit_grid, description, address, location, result, result_media,
    resolved_at, explanation, owner, owner_name"""
# The states that wait for the on-site check (migration 011's cases_awaiting_check holds exactly these).
AWAITING_CHECK = ("resolved", "explained")
MAX_CHECKS = 500


async def own_reports(pool: asyncpg.Pool, worker: str, zone: tzinfo, limit: int,
                      after: ReportPosition | None) -> tuple[list[dict[str, Any]], ReportPosition | None]:
    """One page of the coordinator's reports, newest first, after `after`; and the position of its last if more follow."""
    if after is None:
        rows = await pool.fetch(
            f"""SELECT {REPORT_COLUMNS} FROM cases WHERE reported_by = $1 AND reported_at IS NOT NULL
                ORDER BY {REPORT_ORDER} LIMIT $2""", worker, limit + 1)
    else:
        rows = await pool.fetch(
            f"""SELECT {REPORT_COLUMNS} FROM cases WHERE reported_by = $1 AND reported_at IS NOT NULL
                  AND (reported_at, case_id) < ($2::timestamptz, $3::text)
                ORDER BY {REPORT_ORDER} LIMIT $4""", worker, after.reported_at, after.case_id, limit + 1)
    page = rows[:limit]
    last = page[-1] if page and len(rows) > limit else None
    return [_plain(r, zone) for r in page], ReportPosition(last["reported_at"], last["case_id"]) if last else None


async def awaiting_check(pool: asyncpg.Pool, grids: tuple[str, ...], zone: tzinfo) -> list[dict[str, Any]]:
    """The cases of these unit grids resolved or explained and waiting for the on-site check, the longest waiting first."""
    rows = await pool.fetch(
        f"""SELECT {CHECK_COLUMNS} FROM cases
            WHERE unit_grid = ANY($1::text[]) AND state IN ({", ".join(f"'{s}'" for s in AWAITING_CHECK)})
            ORDER BY resolved_at NULLS LAST, case_no LIMIT $2""", list(grids), MAX_CHECKS)
    return [_plain(r, zone) for r in rows]

"""Who may see a stored photo, from supervision's own case events and read model (migration 012)."""
from __future__ import annotations

import asyncpg

# Every `media` list of an event, as migration 012 indexes it (the expression must be the index's, word for word).
_CARRIED = "jsonb_path_query_array(e.data, 'lax $.**.media[*]') @> jsonb_build_array($1::text)"


async def owner_may_see(pool: asyncpg.Pool, url: str, owner_code: str) -> bool:
    """A case carrying the photo whose task this owner holds or held (every dispatch is a case.dispatched)."""
    return bool(await pool.fetchval(
        f"""SELECT EXISTS (
              SELECT 1 FROM case_events e
               WHERE {_CARRIED} AND e.effect <> 'refused'
                 AND (EXISTS (SELECT 1 FROM case_events d WHERE d.case_id = e.case_id AND d.type = 'case.dispatched'
                                                            AND d.data->>'owner' = $2)
                      OR EXISTS (SELECT 1 FROM cases c WHERE c.case_id = e.case_id AND c.owner = $2)))""",
        url, owner_code))


async def coordinator_may_see(pool: asyncpg.Pool, url: str, worker_id: str | None, unit_grids: list[str]) -> bool:
    """A case carrying the photo that this coordinator reported, or that lies in one of their unit grids."""
    return bool(await pool.fetchval(
        f"""SELECT EXISTS (
              SELECT 1 FROM case_events e
               WHERE {_CARRIED} AND e.effect <> 'refused'
                 AND (EXISTS (SELECT 1 FROM cases c WHERE c.case_id = e.case_id AND c.unit_grid = ANY($3::text[]))
                      OR ($2::text IS NOT NULL AND EXISTS (
                          SELECT 1 FROM case_events r WHERE r.case_id = e.case_id AND r.type = 'case.reported'
                                                        AND r.data->'coordinator'->>'worker_id' = $2))))""",
        url, worker_id, unit_grids))

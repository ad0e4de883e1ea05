"""SQL of the operators' phone look-up: the compare happens in PostgreSQL, on the normalised number."""
from __future__ import annotations

import asyncpg


async def case_numbers_for_phone(pool: asyncpg.Pool, phone_norm: str, limit: int = 200) -> list[str]:
    """The numbers of the cases whose reporter gave this (normalised) phone, newest first."""
    if not phone_norm:
        return []
    rows = await pool.fetch(
        "SELECT case_no FROM contacts WHERE phone_norm = $1 ORDER BY created_at DESC, case_no DESC LIMIT $2",
        phone_norm, limit,
    )
    return [r["case_no"] for r in rows]

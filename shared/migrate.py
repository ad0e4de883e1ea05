"""Apply every service's schema migrations: `python -m shared.migrate` (services also do it on start)."""
from __future__ import annotations

import argparse
import asyncio
import sys

import asyncpg

from shared.db import PLUMBING_SQL, migrate
from shared.db_roles import SERVICES, RoleMissing, grant_schema
from shared.settings import REPO_ROOT, get_settings



async def migrate_all(services: tuple[str, ...] = SERVICES) -> dict[str, list[str]]:
    """Migrate each service's schema; returns what was applied per schema."""
    settings = get_settings()
    conn = await asyncpg.connect(settings.database_url)
    try:
        applied = {}
        for name in services:
            applied[name] = await migrate(conn, settings.schema(name), [PLUMBING_SQL, REPO_ROOT / "services" / name / "migrations"])
            # The service's own role (WANGGE_<SERVICE>_DATABASE_URL's user) gets its schema's rows, and nothing else.
            role = settings.service_role(name)
            if role:
                await grant_schema(conn, settings.schema(name), role)
        return applied
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    """Command line entry."""
    parser = argparse.ArgumentParser(
        prog="python -m shared.migrate",
        description="Create or update the PostgreSQL schemas of the four services (intake, routing, "
        "supervision, notify) in the database named by WANGGE_DATABASE_URL.",
    )
    parser.parse_args(argv)
    try:
        result = asyncio.run(migrate_all())
    except RoleMissing as exc:
        print(f"could not grant the services' schemas: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"could not migrate {get_settings().database_url}: {exc}. Is PostgreSQL running? Try ./dev infra", file=sys.stderr)
        return 1
    for schema, applied in result.items():
        print(f"{schema}: {len(applied)} migration(s) applied" + (f" ({', '.join(applied)})" if applied else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

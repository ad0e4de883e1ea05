"""One PostgreSQL role per service: its grants (given by the owner at migration) and the production check that a
service's role cannot read another service's schema (DESIGN "Personal data": only notify holds phones)."""
from __future__ import annotations

import asyncpg

from shared.settings import Settings

SERVICES = ("intake", "routing", "supervision", "notify")


class RoleMissing(RuntimeError):
    """A service's role named in its WANGGE_<SERVICE>_DATABASE_URL does not exist in the database."""


async def grant_schema(conn: asyncpg.Connection, schema: str, role: str) -> None:
    """Give `role` what a service does with its own schema — read and write rows, use sequences — and nothing else:
    no DDL (the owner migrates), no other schema. Tables the owner creates later are granted too (default
    privileges), so a migration applied after this needs no second grant."""
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role):
        raise RoleMissing(f"PostgreSQL role {role!r} does not exist: create it (CREATE ROLE {role} LOGIN PASSWORD …; "
                          "deploy/local/postgres.sh does so locally)")
    s = await conn.fetchval("SELECT quote_ident($1)", schema)
    r = await conn.fetchval("SELECT quote_ident($1)", role)
    async with conn.transaction():
        await conn.execute(f"GRANT USAGE ON SCHEMA {s} TO {r}")
        await conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {r}")
        await conn.execute(f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {s} TO {r}")
        await conn.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {r}")
        await conn.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {r}")


async def schema_access_problems(conn: asyncpg.Connection, settings: Settings, service: str) -> list[str]:
    """What the connected role may reach beyond `service`'s own schema (empty: nothing). A superuser, a role that
    bypasses row security, owns (or may become the owner of) another service's schema, or holds USAGE on it."""
    env = f"WANGGE_{service.upper()}_DATABASE_URL"
    me = await conn.fetchrow("SELECT current_user AS name, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
    problems = []
    if me["rolsuper"] or me["rolbypassrls"]:
        problems.append(f"{env}: {service} connects as {me['name']!r}, a superuser (or BYPASSRLS) role that reads every "
                        f"schema; give it a role of its own granted schema {settings.schema(service)!r} only")
        return problems
    others = [settings.schema(other) for other in SERVICES if other != service]
    rows = await conn.fetch(
        """SELECT nspname, pg_has_role(nspowner, 'MEMBER') AS owner, has_schema_privilege(oid, 'USAGE') AS usage
           FROM pg_namespace WHERE nspname = ANY($1::text[]) ORDER BY nspname""", others)
    for row in rows:
        if row["owner"] or row["usage"]:
            how = "owns it (or is a member of its owner)" if row["owner"] else "holds USAGE on it"
            problems.append(f"{env}: {service}'s role {me['name']!r} can read schema {row['nspname']!r} ({how}); "
                            f"revoke it (REVOKE ALL ON SCHEMA {row['nspname']} FROM {me['name']}) or give {service} "
                            "a role of its own granted its schema only")
    return problems


async def database_problems(settings: Settings, service: str) -> list[str]:
    """The production check at start: connect as `service`'s role and list what it may read that it must not."""
    url = settings.service_database_url(service)
    env = f"WANGGE_{service.upper()}_DATABASE_URL"
    try:
        conn = await asyncpg.connect(url, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        where = url.rsplit("@", 1)[-1]  # no password in the message
        return [f"{env}: cannot connect to {where} to check {service}'s role: {exc}"]
    try:
        return await schema_access_problems(conn, settings, service)
    finally:
        await conn.close(timeout=5)

"""`python -m services.intake`: serve intake, or manage its API clients."""
from __future__ import annotations

import argparse
import asyncio
import secrets
import sys

import asyncpg

from services.intake.adapters.repository import add_client
from services.intake.bootstrap import MIGRATIONS, build
from shared.db import PLUMBING_SQL, migrate
from shared.serve import build_and_serve
from shared.settings import get_settings

# Fixed tokens for the local demo only (./dev up seeds them); production issues random ones.
DEMO_CLIENTS = [
    {"name": "网格员001终端", "role": "terminal", "token": "demo-terminal-token", "worker_id": "W001", "device_id": "SZT-0001"},
    {"name": "12345热线", "role": "hotline", "token": "demo-hotline-token"},
    {"name": "指挥中心值班员", "role": "operator", "token": "demo-operator-token"},
    {"name": "管理员", "role": "admin", "token": "demo-admin-token"},
]


async def _with_schema(work) -> None:
    settings = get_settings()
    conn = await asyncpg.connect(settings.database_url)
    try:
        schema = settings.schema("intake")
        await migrate(conn, schema, [PLUMBING_SQL, MIGRATIONS])
        await conn.execute(f'SET search_path TO "{schema}"')
        await work(conn)
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    """Command line entry."""
    parser = argparse.ArgumentParser(
        prog="python -m services.intake",
        description="wangge intake (受理): takes reports over HTTP and from wangge.reports, numbers the cases, "
        "and publishes case.reported / case.accepted on wangge.cases. Settings come from WANGGE_* variables "
        "(see `./dev env`).",
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the service (the default); port WANGGE_INTAKE_PORT, 8101")
    add = sub.add_parser("add-client", help="register an API client and print its token")
    add.add_argument("--name", required=True, help="who it is, e.g. 网格员001终端")
    add.add_argument("--role", required=True, choices=["terminal", "hotline", "owner", "operator", "admin"])
    add.add_argument("--worker-id", help="terminal: the coordinator's id (W001)")
    add.add_argument("--device-id", help="terminal: the device id (SZT-0001)")
    add.add_argument("--owner-code", help="owner: the department or community code")
    add.add_argument("--token", help="use this token instead of a random one")
    sub.add_parser("seed-demo-clients", help="register the demo tokens of the local demo (never in production)")
    args = parser.parse_args(argv)

    if args.command in (None, "serve"):
        return build_and_serve(build, "intake", get_settings().intake_port)
    try:
        if args.command == "add-client":
            token = args.token or secrets.token_urlsafe(24)
            asyncio.run(_with_schema(lambda conn: add_client(
                conn, name=args.name, role=args.role, token=token, worker_id=args.worker_id,
                device_id=args.device_id, owner_code=args.owner_code)))
            print(token)
        else:
            async def seed(conn: asyncpg.Connection) -> None:
                for client in DEMO_CLIENTS:
                    await add_client(conn, **client)

            asyncio.run(_with_schema(seed))
            for client in DEMO_CLIENTS:
                print(f"{client['role']:<9} {client['token']}  ({client['name']})")
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"database unavailable ({exc}); is PostgreSQL running? Try ./dev infra", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

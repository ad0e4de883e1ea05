"""`python -m services.supervision accounts …`: people's accounts from the command line (an administrator on the
server). Works on supervision's schema directly (migrating it first); the registry events (a disabled account's
sessions revoked) go through supervision's outbox, relayed by the running service at once (or when it starts)."""
from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import Any

from services.supervision.bootstrap import MIGRATIONS
from services.supervision.domain.accounts import KIND_LABELS, AccountError
from services.supervision.people import DEMO_PASSWORD, People
from shared.db import PLUMBING_SQL, create_pool, migrate
from shared.settings import Settings, get_settings
from shared.street import StreetDataError, load_street
from shared.topics import Topics


def _parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.supervision accounts",
        description="Manage the accounts people sign in with (the pages' sign-in, POST /api/v1/sessions): operators, "
        "coordinators (网格员, bound to a worker id of the street's people), owners' staff (bound to an owner code) "
        "and administrators. Disabling an account or setting its password ends its sessions on every service.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = sub.add_parser("add", help="add an account (the password is asked, or read from stdin with --password-stdin)")
    add.add_argument("username", help="lower-case letters, digits, . _ - (e.g. zhangsan, huanwei-01)")
    add.add_argument("--name", required=True, help="the person's name as the pages show it (张三)")
    add.add_argument("--kind", required=True, choices=sorted(KIND_LABELS),
                     help="operator (指挥中心), coordinator (网格员), owner (责任单位), admin (管理员)")
    add.add_argument("--owner-code", help="owner: the department or community code (huanwei, 370402001001)")
    add.add_argument("--worker-id", help="coordinator: the person id in the street's people (W001)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    sub.add_parser("list", help="list the accounts (kind, binding, disabled, open sessions, locked)")
    disable = sub.add_parser("disable", help="disable an account: every session of it ends everywhere")
    disable.add_argument("username")
    enable = sub.add_parser("enable", help="enable a disabled account again")
    enable.add_argument("username")
    passwd = sub.add_parser("passwd", help="set an account's password: its sessions end and its lock is lifted")
    passwd.add_argument("username")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    demo = sub.add_parser("seed-demo", help=f"the demo people of ./dev up (password {DEMO_PASSWORD}; refused in production)")
    demo.add_argument("--quiet", action="store_true")
    return parser


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password (密码): ")
    if getpass.getpass("again (再输一次): ") != first:
        raise AccountError("the two passwords differ (两次输入的密码不一致)")
    return first


def _row(a: dict[str, Any]) -> str:
    binding = a["owner_code"] or a["worker_id"] or ""
    locked = a["locked_until"]
    flags = [f for f, on in (("disabled", a["disabled"]), ("demo", a["demo"]),
                              (f"locked until {locked.isoformat(timespec='seconds')}" if locked else "", locked)) if on]
    return (f"{a['username']:<16} {a['kind']:<12} {binding:<16} sessions {a['open_sessions']:<3} "
            f"{a['display_name']}{'  [' + ', '.join(flags) + ']' if flags else ''}")


async def _run(args: argparse.Namespace, settings: Settings, password: str | None) -> int:
    pool = await create_pool(settings.database_url, settings.schema("supervision"))
    try:
        async with pool.acquire() as conn:
            await migrate(conn, settings.schema("supervision"), [PLUMBING_SQL, MIGRATIONS])
        people = People(pool, Topics(settings.topic_prefix), load_street(settings.street_dir), settings)
        if args.command == "add":
            made = await people.add(username=args.username, display_name=args.name, kind=args.kind,
                                    password=password or "", owner_code=args.owner_code, worker_id=args.worker_id)
            print(_row(made))
        elif args.command == "list":
            for account in await people.list():
                print(_row(account))
        elif args.command in ("disable", "enable"):
            if not await people.set_disabled(args.username, args.command == "disable"):
                print(f"no account {args.username!r}", file=sys.stderr)
                return 1
            print(f"{args.username}: {args.command}d" + ("; its sessions end on every service within seconds"
                                                          if args.command == "disable" else ""))
        elif args.command == "passwd":
            if not await people.set_password(args.username, password or ""):
                print(f"no account {args.username!r}", file=sys.stderr)
                return 1
            print(f"{args.username}: password set; its sessions end on every service within seconds")
        else:
            made = await people.seed_demo()
            if not args.quiet:
                print(f"demo people (password {DEMO_PASSWORD}): " + ", ".join(a["username"] for a in made[:3])
                      + f", … ({len(made)} accounts)")
    finally:
        await pool.close()
    return 0


def main(argv: list[str]) -> int:
    """Command line entry (after `accounts`)."""
    settings = get_settings()
    args = _parser(settings).parse_args(argv)
    if args.command == "seed-demo" and settings.profile == "production":
        print("the production profile refuses demo accounts: add real ones with `accounts add`", file=sys.stderr)
        return 1
    try:
        password = _password(args.password_stdin) if args.command in ("add", "passwd") else None
        return asyncio.run(_run(args, settings, password))
    except AccountError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    except StreetDataError as exc:
        print(f"cannot read the street: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncio.TimeoutError) as exc:
        print(f"could not reach PostgreSQL at {settings.database_url.split('@')[-1]}: {exc!r}. Is it running? "
              "Try ./dev infra", file=sys.stderr)
        return 1

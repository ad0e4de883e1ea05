"""`python -m services.routing [serve]` runs the service; `... load-street [DIR]` loads a street."""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

import asyncpg
from aiokafka.errors import KafkaError

from shared.settings import get_settings
from shared.street import StreetDataError

# PostgreSQL errors that mean "not reachable / not set up", as opposed to the data being refused.
UNREACHABLE = (
    asyncpg.CannotConnectNowError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidPasswordError,
)


def main(argv: list[str] | None = None) -> int:
    """Command line entry."""
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m services.routing",
        description="wangge routing: grids, owners and categories; dispatches accepted cases to their owners.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "serve",
        help="run the service (the default)",
        description=f"Consume wangge.cases and serve the HTTP API on {settings.http_host}:{settings.routing_port} "
        "(WANGGE_ROUTING_PORT). Loads the street from WANGGE_STREET_DIR first if none is loaded.",
    )
    load = commands.add_parser(
        "load-street",
        help="load a street's grids, addresses, owners and categories",
        description="Read a street folder (<name>-grids.geojson, -addresses.csv, -categories.csv, "
        "-departments.csv, -people.csv, optional -calendar.csv), create every owner's task topic "
        "(wangge.tasks.<owner>) and the contract's topics, and replace routing's reference tables in one "
        "transaction. Running it again with the same folder gives the same tables.",
    )
    load.add_argument(
        "dir", nargs="?", type=Path, default=settings.street_dir,
        help=f"the street folder (default: WANGGE_STREET_DIR, now {settings.street_dir})",
    )
    args = parser.parse_args(argv)
    if args.command == "load-street":
        return load_street_command(args.dir)
    return serve()


def serve() -> int:
    """Run the service until interrupted."""
    from services.routing.bootstrap import build
    from shared.serve import build_and_serve

    return build_and_serve(build, "routing", get_settings().routing_port)


def load_street_command(folder: Path) -> int:
    """load-street: explain failures in a line, exit 1; print progress and a summary."""
    from services.routing.loading import load_into, read_street

    settings = get_settings()
    # We explain an unreachable broker in one line ourselves; aiokafka's own error log would repeat it.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    say = lambda message: print(f"  {message}", flush=True)  # noqa: E731
    print(f"reading street from {folder}", flush=True)
    try:
        street = read_street(folder)
        result = asyncio.run(load_into(settings, street, folder, say=say))
    except StreetDataError as exc:
        print(f"street data error: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.InterfaceError, *UNREACHABLE) as exc:
        where = settings.database_url.rsplit("@", 1)[-1]  # no credentials in the message
        print(f"could not reach PostgreSQL at {where}: {exc}. Is it running? Try ./dev infra", file=sys.stderr)
        return 1
    except asyncpg.PostgresError as exc:
        print(f"the database refused the load, nothing was changed: {exc}", file=sys.stderr)
        return 1
    except (KafkaError, asyncio.TimeoutError) as exc:
        print(
            f"could not reach Kafka at {settings.kafka_bootstrap}: {exc!r}. Is it running? Try ./dev infra "
            "(nothing was written to the database; running load-street again is safe)",
            file=sys.stderr,
        )
        return 1
    print(result.line())
    print(f"  {result.topics_created} task topic(s) created, {result.task_topics - result.topics_created} already there")
    return 0


if __name__ == "__main__":
    sys.exit(main())

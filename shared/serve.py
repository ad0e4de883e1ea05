"""Running a service process: logging, then uvicorn on the service's port."""
from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, Callable

import uvicorn
from fastapi import FastAPI

from shared.bounded_http import bounded_protocol
from shared.db_roles import database_problems
from shared.logs import configure_logging
from shared import self_restart
from shared.runtime import Service
from shared.settings import Settings, get_settings
from shared.street import StreetDataError


def serve(app: FastAPI, service: str, port: int) -> None:
    """Serve the app until interrupted (SIGTERM/SIGINT stop it cleanly)."""
    settings = get_settings()
    configure_logging(service, settings.log_level)
    # Open connections (an event stream, say) get 5 s to finish on SIGTERM: stopping is bounded, so a restart is
    # never refused by the old process still holding the port.
    # proxy_headers off: uvicorn would believe X-Forwarded-For from any loopback peer (and, in older versions, its
    # left-most, client-written entry). The client address is taken by shared.http.client_address instead,
    # from WANGGE_TRUSTED_PROXIES' hops only.
    self_restart.watch(service, app.state.runtime.problem, settings.self_restart_seconds)
    uvicorn.run(app, **server_options(settings, port))


def server_options(settings: Settings, port: int, *, graceful_seconds: float = 5) -> dict[str, Any]:
    """uvicorn's options for a service (and the live process): bounded against a stranger who reaches it directly —
    headers whole within WANGGE_HTTP_HEADER_TIMEOUT_SECONDS and at most WANGGE_HTTP_MAX_HEADER_BYTES
    (shared/bounded_http.py), at most WANGGE_HTTP_MAX_CONNECTIONS at once (503 beyond), idle keep-alive closed after
    5 s (nginx's upstream keep-alive gives up sooner, so it never reuses a connection being closed)."""
    return {"host": settings.http_host, "port": port, "log_config": None, "access_log": False,
            "timeout_graceful_shutdown": graceful_seconds, "proxy_headers": False,
            "http": bounded_protocol(settings.http_header_timeout_seconds, settings.http_max_header_bytes),
            "limit_concurrency": settings.http_max_connections, "timeout_keep_alive": 5}


def refused_unsafe(settings: Settings, service: str, *, name: str | None = None) -> bool:
    """The production profile's checks for `service` (its settings, then its database role); what is missing is
    printed and True returned — the caller exits 2 without starting. `name`: the process's own name if not the
    service's (supervision-live works with supervision's schema and role)."""
    problems = settings.production_problems(service)
    if settings.profile == "production":
        problems += asyncio.run(database_problems(settings, service))
    if problems:
        print(f"{name or service}: the production profile refuses to start; missing or unsafe:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
    return bool(problems)


def build_and_serve(build: Callable[[Settings], Service], service: str, port: int) -> int:
    """Build a service from the environment's settings and serve it; a broken street folder, or a production
    profile missing what it needs to be safe, is a clear error and exit status 2 — the service does not start."""
    settings = get_settings()
    if refused_unsafe(settings, service):
        return 2
    try:
        built = build(settings)
    except StreetDataError as exc:
        print(f"{service}: cannot read the street's data: {exc}", file=sys.stderr)
        return 1
    serve(built.app, service, port)
    return 0


def serve_command(argv: list[str] | None, *, service: str, description: str,
                  build: Callable[[Settings], Service]) -> int:
    """`python -m services.<service> [--port N]`: a --help that says what the service does, then serve."""
    default_port = getattr(get_settings(), f"{service}_port")
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}", description=description)
    parser.add_argument("--port", type=int, default=default_port,
                        help=f"HTTP port (default: WANGGE_{service.upper()}_PORT, now {default_port})")
    args = parser.parse_args(argv)
    return build_and_serve(build, service, args.port)

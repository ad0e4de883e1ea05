"""Running a service process: logging, then uvicorn on the service's port."""
from __future__ import annotations

import sys
from typing import Callable

import uvicorn
from fastapi import FastAPI

from shared.logs import configure_logging
from shared.runtime import Service
from shared.settings import Settings, get_settings
from shared.street import StreetDataError


def serve(app: FastAPI, service: str, port: int) -> None:
    """Serve the app until interrupted (SIGTERM/SIGINT stop it cleanly)."""
    settings = get_settings()
    configure_logging(service, settings.log_level)
    uvicorn.run(app, host=settings.http_host, port=port, log_config=None, access_log=False)


def build_and_serve(build: Callable[[Settings], Service], service: str, port: int) -> int:
    """Build a service from the environment's settings and serve it; a broken street folder is a clear error."""
    try:
        built = build(get_settings())
    except StreetDataError as exc:
        print(f"{service}: cannot read the street's data: {exc}", file=sys.stderr)
        return 1
    serve(built.app, service, port)
    return 0

"""Running a service process: logging, then uvicorn on the service's port."""
from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from shared.logs import configure_logging
from shared.settings import get_settings


def serve(app: FastAPI, service: str, port: int) -> None:
    """Serve the app until interrupted (SIGTERM/SIGINT stop it cleanly)."""
    settings = get_settings()
    configure_logging(service, settings.log_level)
    uvicorn.run(app, host=settings.http_host, port=port, log_config=None, access_log=False)

"""The HTTP surface every service shares: /healthz, /readyz, /metrics, errors as clear 4xx/503."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.db import TRANSIENT_DB_ERRORS
from shared.kafka import TRANSIENT_KAFKA_ERRORS
from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)


def create_app(runtime: ServiceRuntime, *, title: str, description: str, manage_runtime: bool = True) -> FastAPI:
    """A FastAPI app with the common endpoints; it starts and stops the runtime unless told not to."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_runtime:
            await runtime.start()
        try:
            yield
        finally:
            if manage_runtime:
                await runtime.stop()

    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan)
    app.state.runtime = runtime

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok", "service": runtime.name}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        """Kafka and PostgreSQL answer: 200, else 503 with what is missing."""
        checks = await runtime.check_ready()
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503)

    @app.get("/metrics", tags=["operations"])
    async def metrics() -> Response:
        """Prometheus exposition."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "error": e["msg"]} for e in exc.errors()
        ]
        reason = "; ".join(f"{e['field'] or '(body)'}: {e['error']}" for e in errors[:5])
        return JSONResponse({"detail": f"request does not fit the contract: {reason}", "errors": errors}, 422)

    @app.exception_handler(Exception)
    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, (*TRANSIENT_DB_ERRORS, *TRANSIENT_KAFKA_ERRORS)):
            log.warning("request failed on unavailable infrastructure: %s", exc)
            return JSONResponse({"detail": "storage is briefly unavailable; nothing was recorded, retry"}, 503)
        log.exception("unexpected error")
        return JSONResponse({"detail": "internal error; nothing was recorded, retry or report it"}, 500)

    return app

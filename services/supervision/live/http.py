"""The live figures over HTTP: GET /api/v1/live/figures (JSON) and GET /api/v1/live/events (server-sent events).

Operators and admins, like every non-public endpoint. The browser's EventSource cannot send an
Authorization header, so the big screen reads the event stream with fetch() and a ReadableStream.
"""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from shared.auth import Client, client_by_token, presented_token, require
from services.supervision.live.streams import LiveStreams

operator = require("operator", "admin")
HEARTBEAT_SECONDS = 15.0  # a comment line now and then keeps proxies from closing an idle stream
RECHECK_SECONDS = 1.0     # how often an open stream checks that its credential is still valid


class GridFigures(BaseModel):
    unit_grid: str
    name: str
    community: str | None
    open: int
    overdue: int


class Today(BaseModel):
    date: str = Field(description="today in street time (YYYY-MM-DD)")
    hours: list[str] = Field(description="the start of each of today's 24 hours, ISO 8601 with offset")
    street: list[int] = Field(description="cases accepted (立案) in the street in each hour")
    unit_grids: dict[str, list[int]] = Field(description="per unit grid with any case today: cases accepted per hour")


class Spike(BaseModel):
    community: str
    community_name: str
    category: str
    category_name: str
    window_start: str
    window_end: str
    count: int
    threshold: int


class LiveFigures(BaseModel):
    generated_at: str = Field(description="ISO 8601 with offset (street time)")
    open_now: int = Field(description="cases not finished (not closed, rejected or merged)")
    overdue_now: int = Field(description="open cases whose handling clock runs past the deadline")
    unit_grids: list[GridFigures]
    today: Today
    cases_last_hour: dict[str, int] = Field(description="cases accepted in the current hour, per unit grid")
    spikes: list[Spike] = Field(description="a category in a community with threshold or more cases in one window")
    spike_threshold: int


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One server-sent event (a JSON body on one data line)."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def build_live_router(streams: LiveStreams) -> APIRouter:
    """The /api/v1/live routes."""
    router = APIRouter(prefix="/api/v1/live", tags=["live figures"])

    @router.get("/figures", response_model=LiveFigures)
    async def live_figures(_: Client = Depends(operator)) -> dict[str, Any]:
        """Open and overdue now (street and per unit grid), cases per unit grid per hour of today, spikes."""
        return streams.figures()

    @router.get("/events", response_class=StreamingResponse, responses={200: {
        "description": "text/event-stream: `event: case` with {case_no, type, unit_grid, unit_grid_name, community, "
                       "category, category_name, occurred_at, state} for each case event from now on; no personal data; "
                       "`event: closed` and the end once the credential is revoked or expires",
        "content": {"text/event-stream": {"schema": {"type": "string"}}}}})
    async def live_events(request: Request, client: Client = Depends(operator)) -> StreamingResponse:
        """Each case event as it happens (server-sent events), without reporter, phone or free text. The stream
        ends with `event: closed` once its credential is revoked or expires (checked every second)."""
        token = presented_token(request)
        runtime = request.app.state.runtime

        async def still_valid() -> bool:
            found = await client_by_token(runtime.pool, token or "", production=runtime.settings.profile == "production")
            return found is not None and found.role == client.role

        async def stream() -> AsyncIterator[bytes]:
            queue = streams.broadcast.subscribe()
            loop = asyncio.get_running_loop()
            try:
                # The first bytes go out at once, so the page (and nginx) know the stream is open.
                yield b"retry: 3000\n" + sse("hello", {"open_now": streams.figures()["open_now"]})
                checked = heard = loop.time()
                while True:
                    # A stream lives as long as its credential: a revocation or expiry ends it within a second.
                    if loop.time() - checked >= RECHECK_SECONDS:
                        if not await still_valid():
                            yield sse("closed", {"reason": "credential revoked or expired (凭证已失效，请重新登录)"})
                            return
                        checked = loop.time()
                    try:
                        event = await asyncio.wait_for(queue.get(), RECHECK_SECONDS)
                    except asyncio.TimeoutError:
                        if loop.time() - heard >= HEARTBEAT_SECONDS:
                            yield b": keepalive\n\n"
                            heard = loop.time()
                        continue
                    yield sse("case", event)
                    heard = loop.time()
            finally:
                streams.broadcast.unsubscribe(queue)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"X-Accel-Buffering": "no", "Cache-Control": "no-store"})

    return router

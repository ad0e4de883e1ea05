"""The live figures over HTTP: GET /api/v1/live/figures (JSON) and GET /api/v1/live/events (server-sent events).

Operators and admins, and the wall's read-only screen credential. The browser's EventSource cannot send an
Authorization header, so the big screen reads the event stream with fetch() and a ReadableStream.
"""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send
from pydantic import BaseModel, Field

from shared.auth import Client, client_by_token, presented_token, require, token_hash
from services.supervision.live.runtime import LiveRuntime
from services.supervision.live.share import street_figures
from services.supervision.live.streams import LiveStreams

operator = require("operator", "admin", "screen")  # the wall's read-only credential reads the live figures too
HEARTBEAT_SECONDS = 15.0  # a comment line now and then keeps proxies from closing an idle stream
RECHECK_SECONDS = 1.0     # how often an open stream checks that its credential is still valid
# A screen needs one stream (two while a page reloads); a credential holding more is a leak or an attack, and each
# stream holds a queue and a connection: beyond this many at once, 429. WANGGE_LIVE_STREAMS_PER_CREDENTIAL.
STREAMS_PER_CREDENTIAL = 4


class StreamSlots:
    """The open event streams per credential (by its token's hash), so one credential cannot hold unbounded many."""

    def __init__(self, per_credential: int):
        self.per_credential = per_credential
        self.open: dict[str, int] = {}

    def take(self, key: str) -> bool:
        """One more stream for `key`, if it has fewer than the limit open."""
        if self.open.get(key, 0) >= self.per_credential:
            return False
        self.open[key] = self.open.get(key, 0) + 1
        return True

    def give_back(self, key: str) -> None:
        left = self.open.get(key, 0) - 1
        if left > 0:
            self.open[key] = left
        else:
            self.open.pop(key, None)


class _SlotResponse(StreamingResponse):
    """A stream that gives its slot back however it ends — finished, closed by the client, or never started (a
    client gone before the first byte: the body's generator would then never run its own `finally`)."""

    def __init__(self, *args: Any, release: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


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
    overdue_now: int = Field(description="cases overdue now (超期), by the one rule of every screen and figure "
                                         "(services/supervision/domain/overdue.py)")
    unit_grids: list[GridFigures]
    today: Today
    cases_last_hour: dict[str, int] = Field(description="cases accepted in the current hour, per unit grid")
    spikes: list[Spike] = Field(description="a category in a community with threshold or more cases in one window")
    spike_threshold: int


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One server-sent event (a JSON body on one data line)."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def build_live_router(runtime: LiveRuntime, streams: LiveStreams,
                      per_credential: int = STREAMS_PER_CREDENTIAL) -> APIRouter:
    """The /api/v1/live routes: the figures and the event stream of `streams`; `runtime`'s pool says whether a
    stream's credential still holds."""
    router = APIRouter(prefix="/api/v1/live", tags=["live figures"])
    slots = StreamSlots(per_credential)

    @router.get("/figures", response_model=LiveFigures)
    async def live_figures(request: Request, _: Client = Depends(operator)) -> dict[str, Any]:
        """Open and overdue now (street and per unit grid), cases per unit grid per hour of today, spikes — the
        whole street's, whichever live instance is asked (several share the tables' partitions: share.py). 503 naming
        the table partitions no instance answered for, while a rebalance or a recovery is under way."""
        return await street_figures(streams, request)

    @router.get("/share", responses={200: {"description": "{url, partitions: {table: [partition]}, cases: {case id: "
                                                          "what the screen keeps}, hourly, spikes}: no personal data"}})
    async def live_share(_: Client = Depends(operator)) -> dict[str, Any]:
        """This instance's share of the street's figures: the open cases and window rows of the table partitions it
        holds now, and which partitions those are (none while it rebalances or recovers). Another live instance asks
        for it, with its caller's credential, to answer for the whole street."""
        return streams.share()

    @router.get("/events", response_class=StreamingResponse, responses={200: {
        "description": "text/event-stream: `event: case` with {case_no, type, unit_grid, unit_grid_name, community, "
                       "category, category_name, occurred_at, state} for each case event from now on; no personal data; "
                       "`event: closed` and the end once the credential is revoked or expires",
        "content": {"text/event-stream": {"schema": {"type": "string"}}}},
        429: {"description": "this credential already holds as many open streams as allowed (4 by default)"}})
    async def live_events(request: Request, client: Client = Depends(operator)) -> StreamingResponse:
        """Each case event as it happens (server-sent events), without reporter, phone or free text. The stream
        ends with `event: closed` once its credential is revoked or expires (checked every second)."""
        token = presented_token(request)
        key = token_hash(token or "")
        if not slots.take(key):
            raise HTTPException(429, f"this credential already holds {slots.per_credential} open event streams; close "
                                     "one first (此凭证打开的实时数据流已达上限，请先关闭其他页面)")

        async def still_valid() -> bool:
            found = await client_by_token(runtime.pool, token or "", production=runtime.settings.profile == "production")
            return found is not None and found.role == client.role

        async def stream() -> AsyncIterator[bytes]:
            queue = streams.broadcast.subscribe()
            loop = asyncio.get_running_loop()
            try:
                # The first bytes go out at once, so the page (and nginx) know the stream is open.
                try:
                    snapshot = await street_figures(streams, request)
                    hello: dict[str, Any] = {"open_now": snapshot["open_now"]}
                except HTTPException as exc:  # a partition unanswered for: the page shows the figures' own answer
                    hello = {"open_now": None, "detail": exc.detail}
                yield b"retry: 3000\n" + sse("hello", hello)
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

        return _SlotResponse(stream(), media_type="text/event-stream", release=lambda: slots.give_back(key),
                             headers={"X-Accel-Buffering": "no", "Cache-Control": "no-store"})

    return router

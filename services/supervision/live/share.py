"""The street's figures when several live instances share the tables' partitions (faust's consumer group).

Each instance holds the table partitions faust assigned it. The one asked takes its own share and asks every other
member — found in faust's group assignment, where each advertises its canonical_url with the partitions it holds —
for theirs on GET /api/v1/live/share, with the caller's own credential, within a bounded time; then merges them
(figures.merge_shares). A partition no instance answered for (a member killed and not yet replaced, a rebalance or a
recovery in progress) makes the answer an honest 503 naming it, never a figure that silently misses cases.
One instance alone answers from its own tables, as before.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import orjson
from fastapi import HTTPException, Request

from services.supervision.live import figures as live
from services.supervision.live.streams import LiveStreams

log = logging.getLogger(__name__)

# Each peer gets this long to answer with its share (it is an in-memory walk of its tables).
PEER_TIMEOUT_SECONDS = 3.0
# A rebalance in progress settles within a few seconds: the merge is tried this many times, this far apart,
# before the 503.
ATTEMPTS = 3
RETRY_SECONDS = 1.0
FORWARDED = ("authorization", "cookie")


class PartitionsUnanswered(Exception):
    def __init__(self, missing: dict[str, list[int]]):
        super().__init__(missing)
        self.missing = missing


async def _peer_share(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> dict[str, Any] | None:
    try:
        answer = await http.get(url.rstrip("/") + "/api/v1/live/share", headers=headers)
    except (httpx.HTTPError, OSError) as exc:
        log.info("live: the instance at %s did not answer with its share: %r", url, exc)
        return None
    if answer.status_code != 200:
        log.info("live: the instance at %s answered %s for its share", url, answer.status_code)
        return None
    try:
        found = orjson.loads(answer.content)
    except orjson.JSONDecodeError:
        return None
    return found if isinstance(found, dict) else None


async def merged_inputs(streams: LiveStreams, request: Request) -> tuple[Any, Any, Any] | None:
    """(cases, hourly, spikes) of the whole street, or None when this instance is alone in the group (its own
    tables are the street's). Raises PartitionsUnanswered when some partition's share could not be had."""
    headers = {name: request.headers[name] for name in FORWARDED if name in request.headers}
    missing: dict[str, list[int]] = {}
    for attempt in range(ATTEMPTS):
        if streams.alone():
            return None  # the one instance holds every partition: its tables are the street's, as ever
        others = [url for url in streams.peers() if url != streams.url]
        async with httpx.AsyncClient(timeout=PEER_TIMEOUT_SECONDS, trust_env=False) as http:
            theirs = await asyncio.gather(*(_peer_share(http, url, headers) for url in others))
        shares = [streams.share(), *(s for s in theirs if s is not None)]
        cases, hourly, spikes, missing = live.merge_shares(shares, streams.table_partitions())
        if not missing:
            return cases, hourly, spikes
        if attempt + 1 < ATTEMPTS:
            await asyncio.sleep(RETRY_SECONDS)
    raise PartitionsUnanswered(missing)


async def street_figures(streams: LiveStreams, request: Request) -> dict[str, Any]:
    """The whole street's figures, whichever instance is asked (503 naming what no instance answered for)."""
    try:
        merged = await merged_inputs(streams, request)
    except PartitionsUnanswered as exc:
        named = "; ".join(f"{name} {', '.join(map(str, parts))}" for name, parts in sorted(exc.missing.items()))
        raise HTTPException(503, f"no live instance answered for these table partitions: {named} — a rebalance or a "
                                 "recovery is under way, ask again shortly (实时数据暂不完整：部分分区暂无实例应答，请稍后重试)",
                            headers={"Retry-After": "2"}) from None
    if merged is None:
        return streams.figures()
    return streams.figures_from(*merged)

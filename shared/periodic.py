"""A worker that takes a turn every so often: the shape of every housekeeping loop (claims pruning, held updates,
the statistics' days), written once.

A transient failure (the database or the broker away) is logged and the next turn tries again; anything else is
a bug and is raised, so the runtime's watchdog logs it and restarts the worker.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from shared.errors import describe, is_transient

log = logging.getLogger(__name__)

Turn = Callable[[], Awaitable[object]]


def every(seconds: float, turn: Turn, what: str, *, again_from: int | None = None,
          first_after: bool = False) -> Callable[[], Awaitable[None]]:
    """A worker for ServiceRuntime.worker: await `turn()` every `seconds`.

    again_from: while a turn answers a count at least this big (a backlog), take the next turn at once.
    first_after: wait one period before the first turn (a service just started has not settled yet).
    """

    async def run() -> None:
        if first_after:
            await asyncio.sleep(seconds)
        while True:
            try:
                while (done := await turn()) is not None and again_from is not None and done >= again_from:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 — classified
                if not is_transient(exc):
                    raise
                log.warning("%s failed (%s); next turn in %g s", what, describe(exc), seconds)
            await asyncio.sleep(seconds)

    return run

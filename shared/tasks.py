"""Stopping asyncio tasks within a bound, although a cancellation may be swallowed.

On Python 3.11, asyncio.wait_for returns its inner call's result when a cancellation arrives as that call ends
(gh-86296): the cancelled task goes on as if nothing had happened, and one cancel() followed by an unbounded wait
hangs the stop for ever. So a task is cancelled again until it ends (`cancel_until_done`), and a task's cleanup that
those repeated cancellations must not cut short (leaving its consumer group) runs under `finish`.
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Iterable, TypeVar

T = TypeVar("T")

# How long a cancelled task may run before it is taken to have swallowed the cancellation and is cancelled again.
AGAIN_AFTER = 0.5


async def cancel_until_done(tasks: Iterable[asyncio.Future], timeout: float, *,
                            again_after: float = AGAIN_AFTER) -> set[asyncio.Future]:
    """Cancel each task, and again every `again_after` while it runs, until all have ended or `timeout` has passed;
    returns those still running then (the caller decides what to do with them)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = {task for task in tasks if not task.done()}
    while pending and (left := deadline - loop.time()) > 0:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(again_after, left))
    return pending


async def finish(aw: Awaitable[T], timeout: float) -> T:
    """Await `aw` to its end within `timeout`, even while the awaiting task is cancelled (again and again, by
    cancel_until_done): for the cleanup of a task being stopped. A cancellation that came meanwhile is raised once
    `aw` has ended; past `timeout`, `aw` is cancelled and TimeoutError raised."""
    inner = asyncio.ensure_future(aw)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    cancelled = False
    while not inner.done() and (left := deadline - loop.time()) > 0:
        try:
            await asyncio.wait({inner}, timeout=left)
        except asyncio.CancelledError:
            cancelled = True
    if not inner.done():
        inner.cancel()  # abandoned: it ends at its next await
        if cancelled:
            raise asyncio.CancelledError
        raise asyncio.TimeoutError(f"not done within {timeout:g} s")
    if cancelled:
        if not inner.cancelled():
            inner.exception()  # seen: the cancellation is what the caller is told
        raise asyncio.CancelledError
    return inner.result()

"""shared/tasks.py: a task that swallows a cancellation (Python 3.11's asyncio.wait_for, gh-86296) is still stopped,
within a bound, and a stopping task's cleanup is not cut short by the cancellations repeated for that."""
from __future__ import annotations

import asyncio

import pytest

from shared.tasks import cancel_until_done, finish
from shared.watchdog import Watchdog


def _swallowing_first(swallowed: list[int]):
    """A loop that goes on after its first cancellation, as one whose wait_for returned a result that came with it."""

    async def run() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed.append(1)
                if len(swallowed) > 1:
                    raise

    return run


async def _no_outage() -> bool:
    return True


async def test_the_watchdog_stops_a_watched_loop_that_swallowed_its_first_cancellation():
    swallowed: list[int] = []
    dog = Watchdog("swallowing", stall_seconds=60, interval=60, infrastructure_ok=_no_outage)
    dog.loop("swallower", _swallowing_first(swallowed))
    dog.start()
    await asyncio.sleep(0.05)
    [task] = [t for t in asyncio.all_tasks() if t.get_name() == "swallowing:swallower"]
    stuck = await asyncio.wait_for(dog.stop(timeout=1), 5)
    assert stuck == [] and task.done(), "a loop that swallowed one cancellation was left running"
    assert len(swallowed) == 2


async def test_cancel_until_done_is_bounded_by_a_task_that_swallows_every_cancellation():
    swallowed = 0

    async def deaf() -> None:
        nonlocal swallowed
        while swallowed < 100:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed += 1

    task = asyncio.create_task(deaf())
    await asyncio.sleep(0)
    started = asyncio.get_running_loop().time()
    pending = await asyncio.wait_for(cancel_until_done({task}, 0.4, again_after=0.1), 5)
    assert pending == {task} and asyncio.get_running_loop().time() - started < 1
    assert swallowed >= 3, "not cancelled again while it went on"
    swallowed = 100
    task.cancel()
    await asyncio.wait({task}, timeout=1)


async def test_a_cleanup_under_finish_ends_although_cancelled_again_and_the_cancellation_follows():
    cleaned: list[str] = []

    async def cleanup() -> None:
        await asyncio.sleep(0.3)
        cleaned.append("left the group")

    async def loop() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await finish(cleanup(), 5)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    pending = await asyncio.wait_for(cancel_until_done({task}, 3, again_after=0.05), 5)
    assert not pending and task.cancelled()
    assert cleaned == ["left the group"], "a repeated cancellation cut the cleanup short"


async def test_finish_abandons_what_outlives_its_bound():
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(finish(asyncio.sleep(3600), 0.1), 5)

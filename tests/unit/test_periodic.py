"""shared/periodic.every: the one shape of the housekeeping workers (claims pruning, held updates, statistics' days)."""
from __future__ import annotations

import asyncio

import pytest

from shared.periodic import every


async def test_a_backlog_is_taken_at_once_and_then_the_worker_waits_its_period():
    answers = iter([50, 40, 3])
    turns: list[float] = []

    async def turn() -> int:
        turns.append(asyncio.get_running_loop().time())
        return next(answers, 0)

    task = asyncio.create_task(every(0.5, turn, "a backlog", again_from=10)())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # 50 and 40 are a backlog (≥ 10): the next turn comes at once; 3 is not, so the worker sleeps its 0.5 s.
    assert len(turns) == 3
    assert turns[-1] - turns[0] < 0.1


async def test_a_transient_failure_waits_for_the_next_turn_and_a_bug_is_raised(caplog):
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionRefusedError("the database is away")

    task = asyncio.create_task(every(0.05, flaky, "a flaky turn")())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls >= 2, "the worker took no turn after a transient failure"
    assert "a flaky turn failed" in caplog.text

    async def bug() -> None:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        await asyncio.wait_for(every(0.05, bug, "a buggy turn")(), 2)


async def test_first_after_waits_one_period_before_the_first_turn():
    turns = 0

    async def turn() -> None:
        nonlocal turns
        turns += 1

    task = asyncio.create_task(every(0.3, turn, "a late start", first_after=True)())
    await asyncio.sleep(0.1)
    assert turns == 0
    await asyncio.sleep(0.3)
    assert turns == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_watchdog_whose_round_swallowed_its_cancellation_still_stops():
    """Python 3.11's asyncio.wait_for returns its inner call's result, swallowing a cancellation that arrives as that
    call ends (gh-86296); the watchdog awaits several per round. A probe standing in for that race swallows the first
    cancellation: the watchdog must stop all the same, within a bound (one cancel() and a wait for ever hung a
    service's stop, and with it tests/integration/test_plumbing.py, for a minute)."""
    from shared.watchdog import Watchdog

    asking = asyncio.Event()
    swallowed = 0

    async def check() -> None:
        raise ConnectionError("a probe failing: the round asks whether the infrastructure answers")

    async def answers() -> bool:
        nonlocal swallowed
        asking.set()
        if swallowed:
            return False  # the race happens once; every later round answers at once
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            swallowed += 1  # what wait_for does when its inner call ends as the cancellation comes
        return False

    dog = Watchdog("swallowing", stall_seconds=0, interval=0.01, infrastructure_ok=answers)
    dog.probe("a failing probe", check, None)
    dog.start()
    await asyncio.wait_for(asking.wait(), 5)
    await asyncio.wait_for(dog.stop(timeout=1), 5)
    assert swallowed == 1

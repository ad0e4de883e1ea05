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

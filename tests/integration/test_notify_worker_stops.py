"""notify's delivery worker ends with its service. A worker that outlived its test's notify logged "delivery worker
interrupted (InterfaceError: pool is closed); retrying" every second for the rest of the run: on Python 3.11,
asyncio.wait_for returned the wake-up that arrived together with the cancellation (a NOTIFY of a delivery the
consumer had just committed as the fixture stopped notify), so the cancelled worker went on; runtime.stop abandoned
it after 10 s and closed the pool, which the worker took for an outage to retry for ever."""
from __future__ import annotations

import asyncio
import logging

import pytest

from shared.settings import Settings
from services.notify.bootstrap import build
from services.notify.worker import DeliveryWorker
from tests.notify_cases import Case
from tests.notify_running import Notify, notify  # noqa: F401 (the fixture)

pytestmark = pytest.mark.integration


def _task(name: str) -> asyncio.Task:
    [task] = [t for t in asyncio.all_tasks() if t.get_name() == name]
    return task


async def test_the_delivery_worker_ends_with_its_runtime_while_replies_are_being_queued(
        isolated: Settings, caplog: pytest.LogCaptureFixture):
    service = build(isolated.model_copy(update={"sms_gateway_url": "http://127.0.0.1:9/sms"}), manage_runtime=False)
    await asyncio.wait_for(service.runtime.start(), 60)
    worker = _task("notify:deliveries")
    try:
        await service.runtime.wait_until_consuming(60)
        pool = service.runtime.pool
        for i in range(5):  # deliveries committed (and NOTIFYs sent) right up to the stop
            case = Case(f"1390000{i:04d}")
            await asyncio.wait_for(pool.execute(
                """INSERT INTO deliveries(id, case_id, case_no, kind, template, channel, to_phone, text, state,
                                          source_event_id, expires_at)
                   VALUES (gen_random_uuid(), $1, $2, 'progress', 'progress_signed', 'sms', $3, '【文化路街道】',
                           'pending', $4, now() + interval '1 hour')""", case.id, case.no, case.phone, case.id), 10)
    finally:
        with caplog.at_level(logging.INFO, logger="services.notify.worker"):
            stuck = await asyncio.wait_for(service.runtime.watchdog.stop(timeout=5), 30)  # type: ignore[union-attr]
            service.runtime.watchdog = None
            await asyncio.wait_for(service.runtime.stop(), 30)
            await asyncio.sleep(2.5)  # a leaked worker would retry twice by now
    assert stuck == [] and worker.done()
    assert not [r for r in caplog.records if r.name == "services.notify.worker" and "retrying" in r.getMessage()]


async def test_a_wake_up_arriving_with_the_cancellation_does_not_keep_the_worker_running(notify: Notify):
    """The race itself, made to happen: the worker is woken, and cancelled one or two turns of the event loop later
    (the wake-up done, its result not yet handed to the worker)."""
    runtime = notify.service.runtime
    for turns in (0, 1, 2, 3):
        worker = DeliveryWorker(runtime, [], poll_seconds=30)
        task = asyncio.create_task(worker.run())
        await asyncio.sleep(0.5)  # listening, waiting for a wake-up
        worker._on_notify()
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)
        if not done:
            task.cancel()  # one more, so as not to leak it from this test either
            await asyncio.wait([task], timeout=5)
        assert done and task.cancelled(), f"the worker went on after a cancellation {turns} turn(s) after its wake-up"


async def test_a_worker_whose_pool_was_closed_ends_instead_of_retrying(isolated: Settings,
                                                                       caplog: pytest.LogCaptureFixture):
    """What runtime.stop does to a loop that did not end in time: the pool is terminated under it. The worker then
    ends at its next turn; it does not retry an outage that will never end."""
    service = build(isolated.model_copy(update={"sms_gateway_url": "http://127.0.0.1:9/sms"}), manage_runtime=False)
    await asyncio.wait_for(service.runtime.start(), 60)
    try:
        worker = DeliveryWorker(service.runtime, [], poll_seconds=0.2)
        with caplog.at_level(logging.INFO, logger="services.notify.worker"):
            task = asyncio.create_task(worker.run())
            await asyncio.sleep(0.5)
            service.runtime.pool.terminate()
            done, _ = await asyncio.wait([task], timeout=5)
            if not done:
                task.cancel()
                await asyncio.wait([task], timeout=5)
        assert done and task.exception() is None
        assert not [r for r in caplog.records if r.name == "services.notify.worker" and "retrying" in r.getMessage()]
        assert any("pool is closed" in r.getMessage() and "ending" in r.getMessage() for r in caplog.records)
    finally:
        await asyncio.wait_for(service.runtime.stop(), 30)

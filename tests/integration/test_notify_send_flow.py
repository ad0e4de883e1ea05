"""notify's delivery worker on the real database against a gateway on loopback that it cannot tell from a real one:
sends in flight bounded by the setting (WANGGE_SMS_GATEWAY_CONNECTIONS) and kept at it while rows are due, and a
worker stopped with sends out and outcomes unrecorded doubles no SMS and no reply when another one takes over."""
from __future__ import annotations

import asyncio
import uuid
from typing import AsyncIterator

import pytest

from shared.runtime import Service
from shared.settings import Settings
from services.notify.bootstrap import build
from services.notify.domain.delivery import RetryPolicy
from tests.support import SmsGateway, TopicReader

pytestmark = pytest.mark.integration

POLICY = RetryPolicy(base_seconds=0.2, cap_seconds=1.0, jitter=0.5, lease_seconds=60)


async def _started(settings: Settings) -> Service:
    service = build(settings, manage_runtime=False, retry_policy=POLICY)
    await asyncio.wait_for(service.runtime.start(), 60)
    return service


async def _queue(service: Service, n: int) -> list[str]:
    """n acknowledgements due now, one per case, as the cases consumer queues them; their delivery ids."""
    ids = [str(uuid.uuid4()) for _ in range(n)]
    await asyncio.wait_for(service.runtime.pool.execute(
        """INSERT INTO deliveries(id, case_id, case_no, kind, template, channel, to_phone, text, state,
                                  source_event_id, expires_at)
           SELECT id, 'c-' || id::text, '20261207-' || lpad(ord::text, 5, '0'), 'acknowledgement', 'acknowledgement',
                  'sms', '13900001001', '【文化路街道】您反映的问题已受理。', 'pending', 'e-' || id::text,
                  now() + interval '1 hour'
             FROM unnest($1::uuid[]) WITH ORDINALITY AS t(id, ord)""",
        [uuid.UUID(i) for i in ids]), 10)
    return ids


async def _count(service: Service, state: str) -> int:
    return await asyncio.wait_for(service.runtime.pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE state = $1", state), 10)


async def _until(check, timeout: float) -> None:
    async def poll() -> None:
        while not await check():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), timeout)


@pytest.fixture
async def settings(isolated: Settings) -> AsyncIterator[Settings]:
    yield isolated.model_copy(update={"sms_gateway_connections": 4})


async def test_sends_in_flight_are_bounded_by_the_setting_and_kept_at_it(settings: Settings):
    async with SmsGateway(delay=0.05) as gateway:
        service = await _started(settings.model_copy(update={"sms_gateway_url": gateway.url}))
        try:
            ids = await _queue(service, 60)
            await _until(lambda: _sent_all(service, 60), 60)
        finally:
            await asyncio.wait_for(service.runtime.stop(), 60)
    assert sorted(gateway.received) == sorted(ids) and set(gateway.received.values()) == {1}
    # Never more than the setting at once, on as many kept-alive connections; and the connections were kept busy,
    # not left to idle while a batch waited for its slowest send.
    assert gateway.most_in_flight == 4
    assert gateway.connections <= 4


async def _sent_all(service: Service, n: int) -> bool:
    return await _count(service, "sent") >= n


async def test_a_worker_stopped_with_sends_out_doubles_no_sms_and_no_reply(settings: Settings):
    """Six answered and recorded, four out at the gateway (it took them, it has not answered), two claimed and not
    sent yet: notify stops. Those still `sending` when their lease runs out are sent again by the next instance under
    the same key, so the gateway delivers each once; the six recorded are never sent again; one reply each."""
    async with SmsGateway(delay=0.01, answer_first=6) as gateway:
        settings = settings.model_copy(update={"sms_gateway_url": gateway.url})
        first = await _started(settings)
        replies_topic = first.runtime.topics.replies
        async with TopicReader(settings.kafka_bootstrap, replies_topic) as replies:
            try:
                ids = await _queue(first, 12)
                await _until(lambda: _sent_all(first, 6), 30)
                await _until(lambda: _held(gateway, 4), 30)
                recorded = {r["id"] for r in await first.runtime.pool.fetch(
                    "SELECT id::text AS id FROM deliveries WHERE state = 'sent'")}
            finally:
                await asyncio.wait_for(first.runtime.stop(), 60)
            assert len(recorded) == 6
            second = await _started(settings)
            try:
                assert await _count(second, "sending") == 6  # claimed by the stopped one, leased
                # Its lease runs out (a minute on the real clock).
                await second.runtime.pool.execute(
                    "UPDATE deliveries SET lease_until = now() - interval '1 second' WHERE state = 'sending'")
                gateway.release()
                await _until(lambda: _sent_all(second, 12), 30)
                uncertain = {r["id"] for r in await second.runtime.pool.fetch(
                    "SELECT id::text AS id FROM deliveries WHERE uncertain_since IS NOT NULL")}
                for i in ids:  # every reply out before the second one stops (its relay has the last ones)
                    await replies.wait_for(lambda m, i=i: m.get("data", {}).get("delivery_id") == i, timeout=30)
            finally:
                await asyncio.wait_for(second.runtime.stop(), 60)
            issued = await replies.all_within(
                2, lambda m: m.get("type") == "reply.issued" and m["data"]["delivery_id"] in set(ids))
    assert sorted(gateway.received) == sorted(ids)  # each reached the gateway, which delivers a key once
    assert all(gateway.received[i] == 1 for i in recorded)  # recorded before the stop: never sent again
    assert uncertain == set(ids) - recorded
    assert sum(gateway.received[i] for i in uncertain) == 4 * 2 + 2  # four out twice, two claimed never out
    # One reply each: the outbox relay may publish an event twice around a stop (readers drop it by its id), but
    # no delivery has two events.
    events: dict[str, set[str]] = {}
    for m in issued:
        events.setdefault(m["data"]["delivery_id"], set()).add(m["id"])
    assert sorted(events) == sorted(ids) and {len(e) for e in events.values()} == {1}
    assert {m["data"]["state"] for m in issued} == {"sent"}


async def _held(gateway: SmsGateway, n: int) -> bool:
    return gateway.in_flight >= n


async def test_an_outcome_is_recorded_without_waiting_for_the_slowest_send_claimed_with_it(settings: Settings):
    """One send out for seconds: every other reply claimed beside it is sent and recorded meanwhile (their
    reply.issued need not wait for it), and it is recorded when it comes back."""
    async with SmsGateway(delay=0.01, slow_first=1.0) as gateway:
        gateway.slow_gate = asyncio.Event()  # the slow one is out until the others are recorded, however loaded
        service = await _started(settings.model_copy(update={"sms_gateway_url": gateway.url}))
        try:
            await _queue(service, 40)
            await _until(lambda: _sent_all(service, 39), 20)
            slow_still_out = not gateway.slow_answered
            gateway.slow_gate.set()
            await _until(lambda: _sent_all(service, 40), 20)
        finally:
            await asyncio.wait_for(service.runtime.stop(), 60)
    assert slow_still_out
    assert set(gateway.received.values()) == {1}


async def test_a_residents_replies_of_a_case_go_out_one_at_a_time_in_order(settings: Settings):
    """A case's acknowledgement, progress and survey to one resident, all due: each reaches the gateway only once the
    one before it was answered, though the first is slow; another case's reply goes out meanwhile."""
    first, second, third, other = (str(uuid.uuid4()) for _ in range(4))
    async with SmsGateway(delay=0.01, slow_first=1.0) as gateway:
        gateway.slow_key = first
        service = await _started(settings.model_copy(update={"sms_gateway_url": gateway.url}))
        pool = service.runtime.pool
        try:
            await asyncio.wait_for(pool.execute(
                """INSERT INTO deliveries(id, case_id, case_no, kind, template, channel, to_phone, text, state,
                                          source_event_id, expires_at, created_at, next_attempt_at)
                   SELECT id::uuid, c, '20261207-00001', k, k, 'sms', p, '【文化路街道】', 'pending', 'e-' || id,
                          now() + interval '1 hour', now() - n * interval '1 second', now() - n * interval '1 second'
                     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[]) AS t(id, c, k, p, n)""",
                [first, second, third, other], ["c-1", "c-1", "c-1", "c-2"],
                ["acknowledgement", "progress", "survey", "acknowledgement"],
                ["13900001001", "13900001001", "13900001001", "13900002002"], [30, 20, 10, 5]), 10)
            await _until(lambda: _sent_all(service, 4), 30)
        finally:
            await asyncio.wait_for(service.runtime.stop(), 60)
    order = [(what, key) for what, key in gateway.log if key != other]
    assert order == [("in", first), ("out", first), ("in", second), ("out", second), ("in", third), ("out", third)]
    assert gateway.log.index(("out", other)) < gateway.log.index(("out", first))  # not held behind the slow one

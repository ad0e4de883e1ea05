"""The outbox relay sends what a commit wrote at once, also when the commit comes while it is sending (issue 17: the
wait before a relay's next turn was the largest share of report → task at a steady 200/s)."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from shared.contracts import Envelope
from shared.contracts.cases import CaseRejected
from shared.runtime import ServiceRuntime
from tests.support import TopicReader

pytestmark = pytest.mark.integration

NO_MIGRATIONS = Path(__file__).parent / "no_migrations"
POLL = 30.0  # the fallback poll: far beyond what any wait of these tests may take


def _event(case_id: str, reason: str) -> Envelope:
    return CaseRejected(case_no="20261127-0001", reason=reason).envelope(source="test", case_id=case_id)


async def test_a_commit_made_while_the_relay_sends_is_sent_at_once_not_at_the_next_poll(isolated):
    settings = isolated.model_copy(update={"outbox_poll_seconds": POLL})
    runtime = ServiceRuntime("plumbing", settings, NO_MIGRATIONS)
    await runtime.start()
    try:
        send_each = runtime.producer.send_each
        committed_during_send = asyncio.Event()

        async def send_each_with_a_commit_meanwhile(messages):
            # The relay has read its batch and is sending it: a commit now is one its read did not see. Its NOTIFY
            # reaches the relay's connection during the pause, before the relay's turn ends.
            if not committed_during_send.is_set() and any(m.key == "case-first" for m in messages):
                async with runtime.uow() as uow:
                    uow.emit(runtime.topics.cases, _event("case-second", "committed while the relay sent"))
                    await uow.commit()
                committed_during_send.set()
                await asyncio.sleep(0.3)
            return await send_each(messages)

        runtime.producer.send_each = send_each_with_a_commit_meanwhile  # type: ignore[method-assign]
        async with TopicReader(settings.kafka_bootstrap, runtime.topics.cases) as reader:
            async with runtime.uow() as uow:
                uow.emit(runtime.topics.cases, _event("case-first", "first"))
                await uow.commit()
            await reader.wait_for(lambda m: m.get("case_id") == "case-first", timeout=10)
            assert committed_during_send.is_set()
            started = time.monotonic()
            await reader.wait_for(lambda m: m.get("case_id") == "case-second", timeout=10)
            # Woken by its NOTIFY: well under the poll (it waited the whole poll before).
            assert time.monotonic() - started < 5
    finally:
        await runtime.stop()


async def test_a_steady_trickle_of_commits_goes_out_within_milliseconds_each(isolated):
    settings = isolated.model_copy(update={"outbox_poll_seconds": POLL})
    runtime = ServiceRuntime("plumbing", settings, NO_MIGRATIONS)
    await runtime.start()
    try:
        async with TopicReader(settings.kafka_bootstrap, runtime.topics.cases) as reader:
            # 100 commits at 100/s, one row each: any one left to the poll would wait 30 s.
            for n in range(100):
                async with runtime.uow() as uow:
                    uow.emit(runtime.topics.cases, _event(f"case-{n}", f"r{n}"))
                    await uow.commit()
                await asyncio.sleep(0.01)
            sent_by = time.monotonic()
            wanted = {f"case-{n}" for n in range(100)}
            # reader.seen holds the batch being scanned already: done once it covers every case.
            await reader.wait_for(lambda _m: wanted <= {s.get("case_id") for _t, _k, s in reader.seen}, timeout=20)
            assert time.monotonic() - sent_by < 10
        assert await runtime.pool.fetchval("SELECT count(*) FROM outbox") == 0
    finally:
        await runtime.stop()

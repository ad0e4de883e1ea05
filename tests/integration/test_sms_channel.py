"""The SMS channel against a real HTTP server on loopback: a burst goes over a few kept-alive connections."""
from __future__ import annotations

import asyncio

import pytest

from services.notify.adapters.channels import GATEWAY_CONNECTIONS, SmsChannel
from services.notify.domain.delivery import Message, Outcome
from tests.support import SmsGateway

pytestmark = pytest.mark.integration


async def test_a_burst_reuses_a_few_kept_alive_connections():
    async with SmsGateway(delay=0.005) as gateway, SmsChannel(gateway.url) as channel:
        for burst in range(3):
            messages = [Message(ref=f"d-{burst}-{i}", to="13900001001", text="您反映的问题已受理") for i in range(100)]
            results = await asyncio.wait_for(asyncio.gather(*(channel.send(m) for m in messages)), 30)
            assert [r.outcome for r in results] == [Outcome.DELIVERED] * 100
    assert gateway.requests == 300
    # Every connection is kept between bursts: the second and third open none of their own.
    assert gateway.connections <= GATEWAY_CONNECTIONS

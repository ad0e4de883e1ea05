"""The SMS channel against a real HTTP server on loopback: a burst goes over a few kept-alive connections."""
from __future__ import annotations

import asyncio

import pytest

from services.notify.adapters.channels import GATEWAY_CONNECTIONS, SmsChannel
from services.notify.domain.delivery import Message, Outcome

pytestmark = pytest.mark.integration


class CountingGateway:
    """A minimal HTTP/1.1 gateway that answers 200 after `delay` seconds and counts the connections opened to it."""

    def __init__(self, delay: float):
        self.delay = delay
        self.connections = 0
        self.requests = 0
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/sms"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                self.requests += 1
                await asyncio.sleep(self.delay)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def test_a_burst_reuses_a_few_kept_alive_connections():
    gateway = CountingGateway(delay=0.005)
    url = await gateway.start()
    try:
        async with SmsChannel(url) as channel:
            for burst in range(3):
                messages = [Message(ref=f"d-{burst}-{i}", to="13900001001", text="您反映的问题已受理") for i in range(100)]
                results = await asyncio.wait_for(asyncio.gather(*(channel.send(m) for m in messages)), 30)
                assert [r.outcome for r in results] == [Outcome.DELIVERED] * 100
    finally:
        await gateway.stop()
    assert gateway.requests == 300
    # Every connection is kept between bursts: the second and third open none of their own.
    assert gateway.connections <= GATEWAY_CONNECTIONS

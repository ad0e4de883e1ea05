"""The live event streams are capped per credential: one credential cannot hold the live process's connections and
queues; another credential still gets its stream, and a closed stream gives its place back. On the real broker
and database (the live process of tests/integration/test_live_figures.py)."""
from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import httpx
import pytest

from shared.credentials import issued, publish as publish_credentials
from tests.live_running import OPERATOR, running_live

pytestmark = pytest.mark.integration

PER_CREDENTIAL = 3


async def open_stream(stack: AsyncExitStack, client: httpx.AsyncClient, base: str, token: str) -> httpx.Response:
    """A stream opened and kept open until the stack closes; returns its answer (headers read)."""
    return await asyncio.wait_for(stack.enter_async_context(client.stream(
        "GET", f"{base}/api/v1/live/events", headers={"Authorization": f"Bearer {token}"})), 15)


async def test_too_many_live_streams_for_one_credential_get_429(isolated):
    settings = isolated.model_copy(update={"live_streams_per_credential": PER_CREDENTIAL})
    async with running_live(settings) as base, httpx.AsyncClient(timeout=httpx.Timeout(15, read=None)) as client:
        async with AsyncExitStack() as held:
            opened = [await open_stream(held, client, base, OPERATOR) for _ in range(PER_CREDENTIAL)]
            assert [s.status_code for s in opened] == [200] * PER_CREDENTIAL
            refused = await asyncio.wait_for(client.get(f"{base}/api/v1/live/events",
                                                        headers={"Authorization": f"Bearer {OPERATOR}"}), 15)
            assert refused.status_code == 429 and "实时数据流已达上限" in refused.json()["detail"]
            # Another credential is not starved by the first one's streams.
            async with AsyncExitStack() as other:
                await grant_second_operator(settings, base)
                second = await open_stream(other, client, base, "live-second-operator")
                assert second.status_code == 200
        # Closed streams give their places back.
        async with AsyncExitStack() as again:
            assert (await open_stream(again, client, base, OPERATOR)).status_code == 200


async def grant_second_operator(settings, base: str) -> None:
    """Issue another operator credential and wait until the live process knows it (its figures answer 200)."""
    await publish_credentials(settings, [issued("live-second-operator", name="第二值班员", role="operator")])
    async with httpx.AsyncClient(timeout=5) as client:
        async def known() -> None:
            while (await client.get(f"{base}/api/v1/live/figures",
                                    headers={"Authorization": "Bearer live-second-operator"})).status_code != 200:
                await asyncio.sleep(0.1)
        await asyncio.wait_for(known(), 30)



async def test_the_walls_screen_credential_reads_the_live_figures_and_events(isolated):
    async with running_live(isolated) as base, httpx.AsyncClient(timeout=httpx.Timeout(15, read=None)) as client:
        await publish_credentials(isolated, [issued("live-wall-screen", name="大屏", role="screen")])
        wall = {"Authorization": "Bearer live-wall-screen"}

        async def known() -> None:
            while (await client.get(f"{base}/api/v1/live/figures", headers=wall)).status_code != 200:
                await asyncio.sleep(0.1)
        await asyncio.wait_for(known(), 30)
        async with AsyncExitStack() as held:
            stream = await asyncio.wait_for(held.enter_async_context(
                client.stream("GET", f"{base}/api/v1/live/events", headers=wall)), 15)
            assert stream.status_code == 200

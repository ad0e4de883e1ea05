"""The live instances' shares (GET /api/v1/live/share) are no back door to the figures: without a credential, with
a terminal's or a forged one, the instance refuses; an operator gets its share (no personal data in it)."""
from __future__ import annotations

import httpx
import pytest

from tests.live_running import MASKED_PHONE, OPERATOR, TERMINAL, Cases, running_live

pytestmark = pytest.mark.integration


async def test_a_share_only_for_an_operator(isolated, demo_street):
    cases = Cases(isolated)
    unit = sorted(g.code for g in demo_street.level("unit"))[0]
    await cases.accepted("0b7e0000-0000-4000-8000-000000000001", "20261206-7001", "CM04", unit)
    async with running_live(isolated) as base, httpx.AsyncClient(timeout=10) as http:
        url = f"{base}/api/v1/live/share"
        assert (await http.get(url)).status_code == 401
        assert (await http.get(url, headers={"Authorization": "Bearer forged-token"})).status_code == 401
        assert (await http.get(url, headers={"Authorization": f"Bearer {TERMINAL}"})).status_code == 403
        answer = await http.get(url, headers={"Authorization": f"Bearer {OPERATOR}"})
        assert answer.status_code == 200
        assert set(answer.json()) == {"url", "partitions", "cases", "hourly", "spikes"}
        assert MASKED_PHONE not in answer.text and "李" not in answer.text

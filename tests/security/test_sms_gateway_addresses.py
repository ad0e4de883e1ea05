"""The SMS gateway's callback kept to the gateway's addresses (issue 18, item 4: "the inbound callback authenticated
… and kept to the gateway's addresses"), attacked on notify running on the real broker and database.

With WANGGE_SMS_GATEWAY_ADDRESSES set, a callback from anywhere else is refused before its secret is compared —
even with the right secret (a leaked one), and whatever X-Forwarded-For a direct caller writes; the gateway itself,
directly or through the front door, is heard."""
from __future__ import annotations

import pytest

from tests.notify_cases import A_PHONE, closed_case
from tests.notify_running import GATEWAY_TOKEN, Notify, notify  # noqa: F401 (the fixture)
from tests.support import TopicReader

pytestmark = pytest.mark.integration

GATEWAY = "198.51.100.5"


async def test_the_callback_is_heard_from_the_gateways_addresses_only(notify: Notify):
    notify.service.runtime.settings = notify.settings.model_copy(
        update={"sms_gateway_addresses": "198.51.100.0/24, 2001:db8::/32"})
    async with TopicReader(notify.settings.kafka_bootstrap, notify.service.runtime.topics.replies) as reader:
        case = await closed_case(notify, reader, A_PHONE)
    answer = {"from": A_PHONE, "text": "3"}
    secret = {"X-Gateway-Token": GATEWAY_TOKEN}
    async with notify.http("203.0.113.7") as stranger:
        leaked = await stranger.post("/api/v1/sms/inbound", json=answer, headers=secret)
        posing = await stranger.post("/api/v1/sms/inbound", json=answer,
                                     headers={**secret, "X-Forwarded-For": GATEWAY})
    async with notify.http("127.0.0.1") as front_door:  # nginx, passing on a stranger's request
        behind = await front_door.post("/api/v1/sms/inbound", json=answer,
                                       headers={**secret, "X-Forwarded-For": "203.0.113.7"})
    for refused in (leaked, posing, behind):
        assert refused.status_code == 403 and "非短信网关地址" in refused.json()["detail"]
        assert A_PHONE not in refused.text and case.no not in refused.text
    assert not await notify.service.runtime.pool.fetchval(
        "SELECT bool_or(answered_at IS NOT NULL) FROM surveys WHERE case_no = $1", case.no)
    # The gateway, through the front door: heard; without the secret, still not.
    async with notify.http("127.0.0.1") as front_door:
        unsigned = await front_door.post("/api/v1/sms/inbound", json=answer, headers={"X-Forwarded-For": GATEWAY})
        heard = await front_door.post("/api/v1/sms/inbound", json=answer,
                                      headers={**secret, "X-Forwarded-For": GATEWAY})
    assert unsigned.status_code == 401
    assert heard.status_code == 200 and heard.json()["matched"] is True


def test_a_bad_gateway_address_is_named_by_the_production_profile():
    from shared.settings import Settings
    problems = Settings(profile="production", sms_gateway_addresses="198.51.100.0/24,gateway.example"
                        ).production_problems("notify")
    assert any(p.startswith("WANGGE_SMS_GATEWAY_ADDRESSES") and "gateway.example" in p for p in problems)

"""The SMS gateway's callback at the front door (issue 18, item 4: "the inbound callback … kept to the gateway's
addresses"), attacked through the real nginx rendered by deploy/local/nginx.sh from the same template ./dev up uses,
in front of notify on the real broker and database.

The door routes /api/v1/sms/ only from the addresses of WANGGE_SMS_GATEWAY_ADDRESSES (its `allow` lines are rendered
from that setting, the one notify checks again) and from nowhere when it is empty. A caller on another address is
refused at the door, 403 in the house format, with the right secret and whatever X-Forwarded-For it writes, and
nothing changes behind it. The caller here is a loopback address that is not listed, 127.0.0.2: the client's socket
is bound to it, so nginx sees it as the connection's address."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest

import tests.e2e.conftest  # noqa: F401 (first: frontdoor imports from it, and it from frontdoor)
from tests.e2e.frontdoor import _served, open_nginx
from tests.notify_cases import A_PHONE, closed_case
from tests.notify_running import GATEWAY_TOKEN, Notify, notify  # noqa: F401 (the fixture)
from tests.support import TopicReader

pytestmark = pytest.mark.integration

GATEWAY = "127.0.0.1"  # the SMS gateway, as listed
STRANGER = "127.0.0.2"  # loopback too, but not listed


def caller(url: str, address: str) -> httpx.AsyncClient:
    """A client whose connections leave from `address`."""
    return httpx.AsyncClient(base_url=url, timeout=10, transport=httpx.AsyncHTTPTransport(local_address=address))


async def _answered(notify: Notify, case_no: str) -> bool:
    return bool(await notify.service.runtime.pool.fetchval(
        "SELECT bool_or(answered_at IS NOT NULL) FROM surveys WHERE case_no = $1", case_no))


async def test_a_callback_from_an_address_not_listed_is_refused_at_the_door_and_changes_nothing(
        notify: Notify, tmp_path: Path):
    # notify itself is left open to any address here (its own check of the list: test_sms_gateway_addresses.py):
    # what holds below is the door alone.
    async with TopicReader(notify.settings.kafka_bootstrap, notify.service.runtime.topics.replies) as reader:
        case = await closed_case(notify, reader, A_PHONE)
    answer = {"from": A_PHONE, "text": "3"}
    secret = {"X-Gateway-Token": GATEWAY_TOKEN}
    async with _served(notify.service.app) as port, \
            open_nginx(tmp_path / "nginx", {"notify": port}, {"WANGGE_SMS_GATEWAY_ADDRESSES": GATEWAY}) as door:
        async with caller(door.url, STRANGER) as stranger:
            leaked = await stranger.post("/api/v1/sms/inbound", json=answer, headers=secret)
            posing = await stranger.post("/api/v1/sms/inbound", json=answer,
                                         headers={**secret, "X-Forwarded-For": GATEWAY, "X-Real-IP": GATEWAY})
            elsewhere = await stranger.post("/api/v1/sms/other", json=answer, headers=secret)
            # The rest of the door still answers this address: the refusal is the callback's, not a ban.
            open_door = await stranger.get("/healthz")
        for refused in (leaked, posing, elsewhere):
            assert refused.status_code == 403, refused.text
            assert refused.headers["content-type"].startswith("application/json")
            assert refused.json()["detail"].startswith("非短信网关地址，拒绝访问")  # the door's answer, not notify's
            assert A_PHONE not in refused.text and case.no not in refused.text
        assert open_door.status_code == 200
        assert not await _answered(notify, case.no)
        # nginx saw the connection's own address, whatever the headers said.
        log = (door.conf_dir / "logs" / "access.log").read_text(encoding="utf-8")
        assert [line.split()[0] for line in log.splitlines() if "/api/v1/sms/" in line] == [STRANGER] * 3

        # The gateway itself, through the same door: heard (and without the secret, still not).
        async with caller(door.url, GATEWAY) as gateway:
            unsigned = await gateway.post("/api/v1/sms/inbound", json=answer)
            heard = await gateway.post("/api/v1/sms/inbound", json=answer, headers=secret)
    assert unsigned.status_code == 401
    assert heard.status_code == 200 and heard.json()["matched"] is True, heard.text
    assert await _answered(notify, case.no)


async def test_without_gateway_addresses_the_door_routes_the_callback_from_nowhere(notify: Notify, tmp_path: Path):
    async with TopicReader(notify.settings.kafka_bootstrap, notify.service.runtime.topics.replies) as reader:
        case = await closed_case(notify, reader, A_PHONE)
    async with _served(notify.service.app) as port, \
            open_nginx(tmp_path / "nginx", {"notify": port}, {"WANGGE_SMS_GATEWAY_ADDRESSES": ""}) as door:
        for address in (GATEWAY, STRANGER):
            async with caller(door.url, address) as anyone:
                refused = await anyone.post("/api/v1/sms/inbound", json={"from": A_PHONE, "text": "3"},
                                            headers={"X-Gateway-Token": GATEWAY_TOKEN})
            assert refused.status_code == 403, address
            assert refused.json()["detail"].startswith("非短信网关地址，拒绝访问"), address
    assert not await _answered(notify, case.no)


def test_the_production_profile_refuses_notify_without_the_gateway_addresses():
    from shared.settings import Settings
    problems = Settings(profile="production", sms_gateway_addresses="").production_problems("notify")
    assert any(p.startswith("WANGGE_SMS_GATEWAY_ADDRESSES") and "not set" in p for p in problems)
    # Only notify hears the callback: the others do not need it.
    assert not any("WANGGE_SMS_GATEWAY_ADDRESSES" in p
                   for p in Settings(profile="production", sms_gateway_addresses="").production_problems("intake"))

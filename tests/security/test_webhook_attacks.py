"""Attacks on the integrators' webhooks: a replayed or tampered request fails the receiver's check; nothing is
ever sent to an address that is not a configured endpoint (an address written into a delivery, a redirect from
the endpoint, a disabled endpoint); only the street's admin configures endpoints, and never with a URL that
carries credentials or (in production) points inside."""
from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from services.notify.domain.webhooks import sign, url_problem, verify
from tests.integration.test_notify_channels import (  # noqa: F401 — fixtures
    ADMIN, PHONE, Receiver, Street, configure, receiver, street, until,
)

pytestmark = pytest.mark.integration

SECRET = "a" * 64
BODY = b'{"delivery_id":"d-1","case_no":"20261206-0001","kind":"progress","text":"..."}'


def test_a_replayed_request_is_refused_by_its_timestamp_and_a_tampered_one_by_its_signature():
    stamp = int(time.time())
    signature = sign(SECRET, stamp, BODY)
    assert verify(SECRET, signature=signature, timestamp=str(stamp), body=BODY, now=time.time()) is None
    # The same request captured and sent again ten minutes later.
    assert "replay" in verify(SECRET, signature=signature, timestamp=str(stamp), body=BODY, now=time.time() + 600)
    # A fresh timestamp pasted on the old signature, a changed body, another endpoint's secret, no signature.
    assert verify(SECRET, signature=signature, timestamp=str(stamp + 5), body=BODY, now=time.time()) == "bad signature"
    assert verify(SECRET, signature=signature, timestamp=str(stamp), body=BODY.replace(b"progress", b"survey"),
                  now=time.time()) == "bad signature"
    assert verify("b" * 64, signature=signature, timestamp=str(stamp), body=BODY, now=time.time()) == "bad signature"
    assert verify(SECRET, signature=None, timestamp=str(stamp), body=BODY, now=time.time()) == "unsigned"


def test_endpoint_urls_that_could_leak_or_reach_inside_are_refused():
    assert url_problem("http://127.0.0.1:9/hook", production=False) is None  # loopback receivers in tests
    assert url_problem("https://user:pw@platform.example.cn/hook", production=False)
    assert url_problem("ftp://platform.example.cn/hook", production=False)
    assert url_problem("javascript:alert(1)", production=False)
    assert url_problem("http://platform.example.cn/hook", production=True)
    assert url_problem("https://127.0.0.1/hook", production=True)
    assert url_problem("https://10.1.2.3/hook", production=True)
    assert url_problem("https://platform.example.cn/hook", production=True) is None


async def test_a_delivery_naming_an_address_is_never_sent_there(street: Street, receiver: Receiver):
    """A webhook delivery whose address is a URL (not a configured endpoint's id) is refused without a request."""
    pool = street.service.runtime.pool
    delivery_id = uuid.uuid4()
    await pool.execute(
        """INSERT INTO deliveries (id, case_id, case_no, kind, template, channel, to_phone, text, state,
                                   source_event_id, expires_at)
           VALUES ($1, 'c-evil', '20261206-9999', 'progress', 'progress_signed', 'webhook', $2, 'x', 'pending',
                   'e-evil', now() + interval '1 hour')""",
        delivery_id, receiver.url)
    await pool.execute("SELECT pg_notify(current_schema() || '_deliveries', '')")

    async def settled():
        return await pool.fetchrow("SELECT state, last_error FROM deliveries WHERE id = $1 AND state = 'failed'",
                                   delivery_id)
    row = await until(settled)
    assert "not a configured webhook endpoint" in row["last_error"]
    assert receiver.requests == []


async def test_a_redirect_from_the_endpoint_is_not_followed_and_a_disabled_endpoint_gets_nothing(
        street: Street, receiver: Receiver):
    receiver.redirect_to = "http://127.0.0.1:9/elsewhere"  # where a hostile endpoint would send us
    endpoint = await configure(street, receiver.url)
    receiver.secret = endpoint["secret"]
    case_no = await street.report(source="hotline", phone=PHONE)

    async def refused():
        return await street.service.runtime.pool.fetchrow(
            "SELECT state, last_error FROM deliveries WHERE case_no = $1 AND channel = 'webhook' AND state = 'failed'",
            case_no)
    row = await until(refused)
    # Refused as final, with one request only: the redirect was neither followed nor retried.
    assert "redirect" in row["last_error"] and len(receiver.requests) == 1

    transport = httpx.ASGITransport(app=street.service.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://notify",
                                 headers={"Authorization": f"Bearer {ADMIN}"}) as admin:
        gone = await asyncio.wait_for(admin.delete(f"/api/v1/admin/webhooks/{endpoint['id']}"), 10)
        assert gone.status_code == 204
        listed = (await asyncio.wait_for(admin.get("/api/v1/admin/webhooks"), 10)).json()["endpoints"]
        assert [e["enabled"] for e in listed] == [False] and "secret" not in str(listed)
        bad = await asyncio.wait_for(admin.post("/api/v1/admin/webhooks", json={
            "name": "x", "url": "https://u:p@platform.example.cn/hook"}), 10)
        assert bad.status_code == 422 and "credentials" in bad.text
    receiver.redirect_to = None
    later = await street.report(source="hotline", phone="13900007003")
    await until(lambda: [m for m in street.sms.messages if later in m["text"]])
    await asyncio.sleep(1.0)
    assert len(receiver.requests) == 1  # nothing more after it was disabled


async def test_only_the_streets_admin_configures_webhooks(street: Street):
    from tests.support import grant
    await grant(street.settings, street.service, token="chan-operator", name="值班员", role="operator")
    transport = httpx.ASGITransport(app=street.service.app)
    for token, status in ((None, 401), ("chan-operator", 403), ("nope", 401)):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(transport=transport, base_url="http://notify", headers=headers) as client:
            for method, path, body in (("GET", "/api/v1/admin/webhooks", None),
                                       ("POST", "/api/v1/admin/webhooks", {"name": "x", "url": "http://127.0.0.1:9/"}),
                                       ("DELETE", f"/api/v1/admin/webhooks/{uuid.uuid4()}", None)):
                answer = await asyncio.wait_for(client.request(method, path, json=body), 10)
                assert answer.status_code == status, (token, method, path, answer.text)
    assert await street.service.runtime.pool.fetchval("SELECT count(*) FROM webhook_endpoints") == 0

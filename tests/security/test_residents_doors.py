"""The residents' doors: the SMS gateway's callback, the client address, the guessing limits.

Each test is an attack on notify running on the real broker and database (tests/integration's fixture);
it must fail.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from services.notify.commands import NOT_FOUND
from shared.settings import REPO_ROOT
from tests.notify_cases import A_PHONE, B_PHONE, Case, closed_case, of_case
from tests.notify_running import GATEWAY_TOKEN, Notify, notify  # noqa: F401 (the fixture)
from tests.support import TopicReader

pytestmark = pytest.mark.integration


async def _answered(notify: Notify, case: Case) -> bool:
    return await notify.service.runtime.pool.fetchval(
        "SELECT bool_or(answered_at IS NOT NULL) FROM surveys WHERE case_no = $1", case.no)


async def test_the_sms_callback_without_the_gateway_secret_changes_nothing(notify: Notify):
    async with TopicReader(notify.settings.kafka_bootstrap, notify.service.runtime.topics.replies) as reader:
        case = await closed_case(notify, reader, A_PHONE)
    unsatisfied = {"from": A_PHONE, "text": "3"}
    async with notify.http("203.0.113.7") as attacker:
        missing = await attacker.post("/api/v1/sms/inbound", json=unsatisfied)
        wrong = await attacker.post("/api/v1/sms/inbound", json=unsatisfied,
                                    headers={"X-Gateway-Token": GATEWAY_TOKEN[:-1] + "x"})
        prefix = await attacker.post("/api/v1/sms/inbound", json=unsatisfied,
                                     headers={"X-Gateway-Token": GATEWAY_TOKEN[:8]})
        empty = await attacker.post("/api/v1/sms/inbound", json=unsatisfied, headers={"X-Gateway-Token": ""})
    assert [r.status_code for r in (missing, wrong, prefix, empty)] == [401] * 4
    # Nothing told the attacker whether that phone has a case, and the survey is still open.
    assert all(A_PHONE not in r.text and case.no not in r.text for r in (missing, wrong, prefix, empty))
    assert not await _answered(notify, case)
    # The gateway itself, with the secret, is heard.
    async with notify.http() as gateway:
        heard = await gateway.post("/api/v1/sms/inbound", json=unsatisfied, headers={"X-Gateway-Token": GATEWAY_TOKEN})
    assert heard.status_code == 200 and heard.json()["matched"] is True


async def test_without_a_configured_secret_the_callback_hears_no_one(notify: Notify):
    notify.service.runtime.settings = notify.settings.model_copy(update={"sms_inbound_token": ""})
    async with notify.http() as anyone:
        for headers in ({}, {"X-Gateway-Token": ""}, {"X-Gateway-Token": "anything"}):
            refused = await anyone.post("/api/v1/sms/inbound", json={"from": A_PHONE, "text": "1"}, headers=headers)
            assert refused.status_code == 401


@pytest.mark.parametrize("token", ["", "short-secret"])
def test_notify_refuses_to_start_in_production_without_the_gateway_secret(token: str):
    env = {**os.environ, "WANGGE_PROFILE": "production", "WANGGE_SMS_INBOUND_TOKEN": token,
           "WANGGE_KAFKA_BOOTSTRAP": "127.0.0.1:9", "WANGGE_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"}
    started = subprocess.run([sys.executable, "-m", "services.notify", "--port", "9"], cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 2
    assert "production profile refuses to start" in started.stderr
    assert "WANGGE_SMS_INBOUND_TOKEN" in started.stderr


async def test_a_spoofed_x_forwarded_for_does_not_escape_the_guessing_limit(notify: Notify):
    # A direct caller (not a trusted proxy) writes a new X-Forwarded-For on every try: it is still one client.
    async with notify.http("198.51.100.20") as direct:
        for i in range(10):
            spoofed = {"X-Forwarded-For": f"10.66.{i}.1"}
            assert (await direct.post("/api/v1/my-case", json={"case_no": f"20990102-00{i:02d}", "phone": A_PHONE},
                                      headers=spoofed)).status_code == 404
        blocked = await direct.post("/api/v1/my-case", json={"case_no": "20990102-0099", "phone": A_PHONE},
                                    headers={"X-Forwarded-For": "10.66.99.1"})
    assert blocked.status_code == 429
    # Through the front door (a trusted proxy appends the address it saw): the client's own entries, left of
    # it, are not believed either.
    async with notify.http("127.0.0.1") as front_door:
        for i in range(10):
            hops = {"X-Forwarded-For": f"10.77.{i}.1, 198.51.100.30"}
            assert (await front_door.post("/api/v1/my-case", json={"case_no": f"20990103-00{i:02d}",
                                                                     "phone": A_PHONE}, headers=hops)).status_code == 404
        blocked = await front_door.post("/api/v1/my-case", json={"case_no": "20990103-0099", "phone": A_PHONE},
                                        headers={"X-Forwarded-For": "10.77.99.1, 198.51.100.30"})
    assert blocked.status_code == 429
    clients = {r["client_ip"] for r in await notify.service.runtime.pool.fetch("SELECT client_ip FROM lookup_failures")}
    assert clients == {"198.51.100.20", "198.51.100.30"}


async def test_failing_on_purpose_from_elsewhere_does_not_lock_the_resident_out(notify: Notify):
    async with TopicReader(notify.settings.kafka_bootstrap, notify.service.runtime.topics.replies) as reader:
        case = await closed_case(notify, reader, A_PHONE)
    # Many attackers, each failing on this case until refused.
    for attacker in range(4):
        async with notify.http(f"203.0.113.{attacker}") as client:
            answers = [await client.post("/api/v1/my-case", json={"case_no": case.no, "phone": B_PHONE})
                       for _ in range(6)]
            survey = await client.post(f"/api/v1/surveys/{case.no}", json={"phone": B_PHONE, "verdict": "unsatisfied"})
        assert [a.status_code for a in answers] == [404] * 5 + [429] and survey.status_code == 429
    async with notify.http("192.0.2.50") as resident:
        mine = await resident.post("/api/v1/my-case", json={"case_no": case.no, "phone": A_PHONE})
        survey = await resident.post(f"/api/v1/surveys/{case.no}", json={"phone": A_PHONE, "verdict": "satisfied"})
    assert mine.status_code == 200 and mine.json()["case_no"] == case.no
    assert survey.status_code == 200 and survey.json()["verdict"] == "satisfied"


async def test_one_phone_probed_across_case_numbers_learns_nothing_and_is_stopped(notify: Notify):
    async with TopicReader(notify.settings.kafka_bootstrap, notify.service.runtime.topics.replies) as reader:
        target = Case(A_PHONE)
        await notify.cases(target.reported(), target.accepted())
        await reader.wait_for(of_case(target), timeout=20)
    async with notify.http("198.51.100.40") as prober:
        # "No such case" and "not this phone" answer alike: same status, same body.
        wrong_phone = await prober.post("/api/v1/my-case", json={"case_no": target.no, "phone": B_PHONE})
        no_case = await prober.post("/api/v1/my-case", json={"case_no": "20990104-0001", "phone": A_PHONE})
        assert (wrong_phone.status_code, wrong_phone.json()) == (no_case.status_code, no_case.json())
        assert wrong_phone.status_code == 404 and wrong_phone.json()["detail"] == NOT_FOUND
        # Sequential numbers with one phone: refused long before a run of numbers is covered, even the right one.
        tries = []
        for n in range(20):
            tries.append(await prober.post("/api/v1/my-case", json={"case_no": f"20990105-{n:04d}", "phone": A_PHONE}))
        found = await asyncio.wait_for(
            prober.post("/api/v1/my-case", json={"case_no": target.no, "phone": A_PHONE}), 10)
    statuses = [t.status_code for t in tries]
    assert statuses.count(404) == 8 and set(statuses[8:]) == {429}
    assert found.status_code == 429

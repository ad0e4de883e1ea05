"""Attacks on people's sign-in and its cookie: cross-site requests without the page's header, forged and expired
cookies, demo accounts under the production profile, guessing (slowed, then locked, for known and unknown usernames
alike, per username and per address), and the cookie's flags."""
from __future__ import annotations

import asyncio
import time

import pytest

from services.intake.bootstrap import build as build_intake
from services.supervision.bootstrap import build as build_supervision
from tests.integration.test_sessions import PAGE, PASSWORD, add, http, services, sign_in
from tests.support import eventually

pytestmark = pytest.mark.integration

REJECT = "/api/v1/cases/19990101-0001/reject"  # an operator's change at intake: 404 once admitted (no such case)


async def test_a_cookie_without_the_pages_header_cannot_change_anything(isolated):
    async with services(isolated, build_intake, build_supervision) as (intake, supervision):
        await add(supervision, "csrf-op", "operator")
        cookie = (await sign_in(supervision, "csrf-op")).cookies["wangge_session"]
        async with http(intake, cookie) as client:
            async def admitted() -> bool:
                return (await client.post(REJECT, json={"reason": "x"}, headers=PAGE)).status_code == 404
            await eventually(admitted)
            # What a cross-site form or fetch can send: the cookie, no X-Requested-With (or another value).
            for headers in ({}, {"X-Requested-With": "XMLHttpRequest"}):
                refused = await client.post(REJECT, json={"reason": "x"}, headers=headers)
                assert refused.status_code == 403 and "X-Requested-With" in refused.json()["detail"]
        async with http(supervision, cookie) as client:
            # Signing someone out from another site is refused too; reading needs no header.
            assert (await client.delete("/api/v1/sessions")).status_code == 403
            assert (await client.get("/api/v1/sessions")).status_code == 200
            # Sign-in takes JSON only: a cross-site form (text/plain, no preflight) cannot sign a victim in.
            form = await client.post("/api/v1/sessions", content=b'{"username":"csrf-op","password":"%s"}'
                                     % PASSWORD.encode(), headers={"Content-Type": "text/plain"})
            assert form.status_code in (415, 422) and "set-cookie" not in form.headers


async def test_forged_ended_and_expired_cookies_are_refused(make_settings):
    from tests.conftest import delete_topics, drop_schemas
    from shared.topics import Topics, ensure_topics
    settings = make_settings(session_hours=2 / 3600)  # sessions of two seconds
    await ensure_topics(settings.kafka_bootstrap, Topics(settings.topic_prefix).fixed())
    try:
        async with services(settings, build_supervision) as (supervision,):
            await add(supervision, "short", "operator")
            for forged in ("", "x" * 43, "' OR 1=1 --", "demo-operator-token-but-not"):
                async with http(supervision, forged or None) as client:
                    assert (await client.get("/api/v1/sessions")).status_code == 401
                    assert (await client.get("/api/v1/stats/summary")).status_code == 401
            answer = await sign_in(supervision, "short")
            assert "Max-Age=2" in answer.headers["set-cookie"]
            cookie = answer.cookies["wangge_session"]
            async with http(supervision, cookie) as client:
                assert (await client.get("/api/v1/stats/summary")).status_code == 200
                await asyncio.sleep(2.5)
                assert (await client.get("/api/v1/sessions")).status_code == 401
                assert (await client.get("/api/v1/stats/summary")).status_code == 401
    finally:
        await drop_schemas(settings)
        await delete_topics(settings)


async def test_a_demo_account_is_refused_by_the_production_profile(isolated):
    production = isolated.model_copy(update={"profile": "production"})
    async with services(isolated, build_supervision) as (development,):
        await development.app.state.people.seed_demo()
        answer = await sign_in(development, "operator", "wangge-demo")
        assert answer.status_code == 200
        demo_cookie = answer.cookies["wangge_session"]
        assert "Secure" not in answer.headers["set-cookie"]
    async with services(production, build_supervision) as (supervision,):
        refused = await sign_in(supervision, "operator", "wangge-demo")
        assert refused.status_code == 403 and "演示账户" in refused.json()["detail"]
        # A demo session opened under development is no good in production either.
        async with http(supervision, demo_cookie) as client:
            assert (await client.get("/api/v1/sessions")).status_code == 401
            assert (await client.get("/api/v1/stats/summary")).status_code == 401
        # A real account works, and its cookie is Secure (https only) under the production profile.
        await add(supervision, "real-op", "operator")
        answer = await sign_in(supervision, "real-op")
        assert answer.status_code == 200 and "Secure" in answer.headers["set-cookie"]


async def test_guessing_is_slowed_then_locked_for_known_and_unknown_usernames(isolated):
    async with services(isolated, build_supervision) as (supervision,):
        await add(supervision, "target", "operator")
        for username in ("target", "no-such-person"):
            times = []
            for attempt in range(1, 5):  # the limit is 5: four wrong guesses are answered 401, each later
                started = time.monotonic()
                answer = await sign_in(supervision, username, f"guess-{attempt}")
                times.append(time.monotonic() - started)
                assert answer.status_code == 401, answer.text
            assert times[3] > times[0] + 1.0, times  # 0.25 s … 2 s: the delay grows with the failures
            locked = await sign_in(supervision, username, "guess-5")
            assert locked.status_code == 429 and "登录尝试次数过多" in locked.json()["detail"]
            assert 800 <= int(locked.headers["retry-after"]) <= 900
            # Locked: even the right password is refused now (an attacker learns nothing by guessing on).
            again = await sign_in(supervision, username, PASSWORD)
            assert again.status_code == 429 and "set-cookie" not in again.headers


async def test_a_burst_of_parallel_guesses_cannot_outrun_the_lock(isolated):
    async with services(isolated, build_supervision) as (supervision,):
        await add(supervision, "burst", "operator")
        answers = await asyncio.gather(*(sign_in(supervision, "burst", f"guess-{n}") for n in range(12)))
        statuses = sorted(a.status_code for a in answers)
        # Each attempt is counted before its password is checked: at most the limit (5) were checked at all.
        assert statuses.count(401) <= 4 and statuses.count(429) >= 8, statuses


async def test_guessing_from_one_address_over_many_usernames_is_locked(make_settings):
    from tests.conftest import delete_topics, drop_schemas
    from shared.topics import Topics, ensure_topics
    settings = make_settings(sign_in_address_limit=6)
    await ensure_topics(settings.kafka_bootstrap, Topics(settings.topic_prefix).fixed())
    try:
        async with services(settings, build_supervision) as (supervision,):
            await add(supervision, "victim", "operator")
            # Spraying one password over many usernames (each far below its own limit) from one address.
            statuses = [(await sign_in(supervision, f"user{n}", "spray-password")).status_code for n in range(6)]
            assert statuses == [401] * 5 + [429], statuses
            blocked = await sign_in(supervision, "victim", PASSWORD)
            assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
            # Another address is not locked out by this one (X-Forwarded-For believed from the trusted proxy only).
            async with http(supervision) as client:
                other = await client.post("/api/v1/sessions", json={"username": "victim", "password": PASSWORD},
                                          headers={"X-Forwarded-For": "203.0.113.9"})
            assert other.status_code == 200, other.text
    finally:
        await drop_schemas(settings)
        await delete_topics(settings)


async def test_the_cookie_is_httponly_samesite_strict_and_never_in_the_body(isolated):
    async with services(isolated, build_supervision) as (supervision,):
        await add(supervision, "flags", "operator")
        answer = await sign_in(supervision, "flags")
        cookie = answer.cookies["wangge_session"]
        attributes = [a.strip().lower() for a in answer.headers["set-cookie"].split(";")]
        assert "httponly" in attributes and "samesite=strict" in attributes and "path=/" in attributes
        assert len(cookie) >= 40 and cookie not in answer.text  # random, and only in the HttpOnly header
        # Only its hash is kept: the database does not hold the cookie.
        stored = await supervision.runtime.pool.fetch("SELECT session_sha256 FROM sessions")
        assert stored and all(cookie not in r["session_sha256"] for r in stored)
        hashes = await supervision.runtime.pool.fetchval("SELECT string_agg(password_hash, ' ') FROM accounts")
        assert hashes.startswith("$argon2id$") and PASSWORD not in hashes

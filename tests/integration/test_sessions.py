"""People sign in as people: a session cookie accepted by all four services, signed out and disabled everywhere."""
from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager
from typing import AsyncIterator, Callable

import httpx
import pytest

from services.intake.bootstrap import build as build_intake
from services.notify.bootstrap import build as build_notify
from services.routing.bootstrap import build as build_routing
from services.supervision.bootstrap import build as build_supervision
from shared.runtime import Service
from shared.settings import Settings
from tests.support import eventually, running

pytestmark = pytest.mark.integration

PAGE = {"X-Requested-With": "wangge"}
PASSWORD = "correct-horse-battery"


@asynccontextmanager
async def services(settings: Settings, *builds: Callable[[Settings, bool], Service]) -> AsyncIterator[list[Service]]:
    """Services built and started on these settings; stopped after."""
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(running(build(settings, manage_runtime=False))) for build in builds]


def http(service: Service, cookie: str | None = None) -> httpx.AsyncClient:
    """A client of one service (in process); with the session cookie as a browser would send it."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://wangge", timeout=20,
                             cookies={"wangge_session": cookie} if cookie else None)


async def sign_in(supervision: Service, username: str, password: str = PASSWORD) -> httpx.Response:
    async with http(supervision) as client:
        return await client.post("/api/v1/sessions", json={"username": username, "password": password})


async def add(supervision: Service, username: str, kind: str, **binding: str) -> None:
    await supervision.app.state.people.add(username=username, display_name=f"测试{username}", kind=kind,
                                           password=PASSWORD, **binding)


async def as_operator(intake: Service, routing: Service, supervision: Service, notify: Service,
                      cookie: str) -> list[int]:
    """What each service answers the cookie on an operator's request (intake: an unsafe one, with the page header)."""
    async with http(intake, cookie) as client:
        a = (await client.post("/api/v1/cases/19990101-0001/reject", json={"reason": "探测"}, headers=PAGE)).status_code
    async with http(routing, cookie) as client:
        b = (await client.get("/api/v1/owners")).status_code
    async with http(supervision, cookie) as client:
        c = (await client.get("/api/v1/stats/summary")).status_code
    async with http(notify, cookie) as client:
        d = (await client.get("/api/v1/deliveries")).status_code
    return [a, b, c, d]


async def test_an_operator_signs_in_every_service_takes_the_cookie_and_sign_out_ends_it_everywhere(isolated):
    async with services(isolated, build_intake, build_routing, build_supervision, build_notify) as running:
        intake, routing, supervision, notify = running
        await add(supervision, "zhangsan", "operator")
        answer = await sign_in(supervision, "ZhangSan ")  # trimmed, case-insensitive
        assert answer.status_code == 200, answer.text
        me = answer.json()
        assert me["username"] == "zhangsan" and me["role"] == "operator" and me["display_name"] == "测试zhangsan"
        assert me["owner_code"] is None and me["worker_id"] is None and me["unit_grids"] == []
        assert me["expires_at"].endswith("+08:00")
        cookie = answer.cookies["wangge_session"]
        set_cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie.replace("Strict", "strict")
        assert "Path=/" in set_cookie and "Secure" not in set_cookie  # development profile: plain http locally
        # Usable at supervision the moment sign-in answers (its registry table has it: no waiting here)…
        async with http(supervision, cookie) as client:
            assert (await client.get("/api/v1/sessions")).json() == me
            assert (await client.get("/api/v1/stats/summary")).status_code == 200
        # …and at the others as they read the registry (at once in practice; bounded here).
        await eventually(lambda: _all(intake, routing, supervision, notify, cookie, [404, 200, 200, 200]))
        async with http(supervision, cookie) as client:
            out = await client.delete("/api/v1/sessions", headers=PAGE)
            assert out.status_code == 204 and 'wangge_session=""' in out.headers["set-cookie"]
            assert (await client.get("/api/v1/sessions")).status_code == 401
        await eventually(lambda: _all(intake, routing, supervision, notify, cookie, [401, 401, 401, 401]))


async def _all(intake, routing, supervision, notify, cookie, expected: list[int]) -> bool:
    return await as_operator(intake, routing, supervision, notify, cookie) == expected


async def test_a_coordinator_session_carries_worker_and_unit_grids_and_an_owner_its_code(isolated):
    async with services(isolated, build_supervision) as (supervision,):
        await add(supervision, "w001", "coordinator", worker_id="W001")
        await add(supervision, "huanwei", "owner", owner_code="huanwei")
        me = (await sign_in(supervision, "w001")).json()
        assert me["role"] == "terminal" and me["worker_id"] == "W001" and me["unit_grids"] == ["3704020010010101"]
        me = (await sign_in(supervision, "huanwei")).json()
        assert me["role"] == "owner" and me["owner_code"] == "huanwei" and me["unit_grids"] == []


async def test_disabling_an_account_ends_its_sessions_everywhere_and_refuses_sign_in(isolated):
    async with services(isolated, build_intake, build_supervision) as (intake, supervision):
        await add(supervision, "lisi", "operator")
        cookie = (await sign_in(supervision, "lisi")).cookies["wangge_session"]

        async def intake_answers(expected: int) -> bool:
            async with http(intake, cookie) as client:
                got = await client.post("/api/v1/cases/19990101-0001/reject", json={"reason": "探测"}, headers=PAGE)
            return got.status_code == expected
        await eventually(lambda: intake_answers(404))
        assert await supervision.app.state.people.set_disabled("lisi", True)
        async with http(supervision, cookie) as client:
            assert (await client.get("/api/v1/sessions")).status_code == 401
        await eventually(lambda: intake_answers(401))
        refused = await sign_in(supervision, "lisi")
        assert refused.status_code == 403 and "停用" in refused.json()["detail"]


async def test_a_wrong_password_is_a_401_with_a_reason_and_no_cookie(isolated):
    async with services(isolated, build_supervision) as (supervision,):
        await add(supervision, "wangwu", "operator")
        for username, password in (("wangwu", "not-the-password"), ("nobody", PASSWORD)):
            answer = await sign_in(supervision, username, password)
            assert answer.status_code == 401 and "用户名或密码错误" in answer.json()["detail"]
            assert "set-cookie" not in answer.headers
        async with http(supervision) as client:
            assert (await client.get("/api/v1/sessions")).status_code == 401


async def test_an_administrator_manages_accounts_over_http_and_disabling_ends_sessions(isolated):
    from tests.support import grant
    async with services(isolated, build_supervision) as (supervision,):
        await grant(isolated, supervision, token="s-admin", name="管理员", role="admin")
        admin = {"Authorization": "Bearer s-admin"}
        async with http(supervision) as client:
            made = await client.post("/api/v1/accounts", headers=admin, json={
                "username": "Huanwei-02", "display_name": "环卫所 王五", "kind": "owner", "password": PASSWORD,
                "owner_code": "huanwei"})
            assert made.status_code == 201, made.text
            assert made.json()["username"] == "huanwei-02" and made.json()["role"] == "owner"
            assert "password" not in made.text and "argon2" not in made.text
            again = await client.post("/api/v1/accounts", headers=admin, json={
                "username": "huanwei-02", "display_name": "重复", "kind": "operator", "password": PASSWORD})
            assert again.status_code == 409 and "已存在" in again.json()["detail"]
            bad = await client.post("/api/v1/accounts", headers=admin, json={
                "username": "x1", "display_name": "无单位", "kind": "owner", "password": PASSWORD, "owner_code": "nope"})
            assert bad.status_code == 422 and "责任单位代码无效" in bad.json()["detail"]
            short = await client.post("/api/v1/accounts", headers=admin, json={
                "username": "x2", "display_name": "短密码", "kind": "operator", "password": "short"})
            assert short.status_code == 422
        cookie = (await sign_in(supervision, "huanwei-02")).cookies["wangge_session"]
        async with http(supervision) as client:
            listed = (await client.get("/api/v1/accounts", headers=admin)).json()
            assert next(a for a in listed if a["username"] == "huanwei-02")["open_sessions"] == 1
            # A session cookie of an owner cannot manage accounts.
            async with http(supervision, cookie) as owner:
                assert (await owner.get("/api/v1/accounts")).status_code == 403
            off = await client.patch("/api/v1/accounts/huanwei-02", headers=admin, json={"disabled": True})
            assert off.status_code == 200 and off.json()["disabled"] and off.json()["open_sessions"] == 0
            async with http(supervision, cookie) as owner:
                async def refused() -> bool:
                    return (await owner.get("/api/v1/tasks")).status_code == 401
                await eventually(refused)
            assert (await client.patch("/api/v1/accounts/nobody", headers=admin, json={"disabled": True})).status_code == 404
            on = await client.patch("/api/v1/accounts/huanwei-02", headers=admin,
                                    json={"disabled": False, "password": "a-new-password"})
            assert on.status_code == 200 and not on.json()["disabled"]
        assert (await sign_in(supervision, "huanwei-02")).status_code == 401
        assert (await sign_in(supervision, "huanwei-02", "a-new-password")).status_code == 200


def test_the_accounts_command_line(isolated):
    import os
    import subprocess
    import sys

    from shared.settings import REPO_ROOT
    env = {**os.environ, "WANGGE_SCHEMA_PREFIX": isolated.schema_prefix, "WANGGE_TOPIC_PREFIX": isolated.topic_prefix,
           "WANGGE_DATABASE_URL": isolated.database_url}

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "services.supervision", "accounts", *args], cwd=REPO_ROOT,
                              env=env, input=stdin, capture_output=True, text=True, timeout=60)

    assert "coordinator" in run("--help").stdout
    made = run("add", "zhaoliu", "--name", "赵六", "--kind", "coordinator", "--worker-id", "W003",
               "--password-stdin", stdin=PASSWORD + "\n")
    assert made.returncode == 0 and "zhaoliu" in made.stdout, made.stderr
    refused = run("add", "zhaoliu2", "--name", "赵六", "--kind", "coordinator", "--worker-id", "W9999",
                  "--password-stdin", stdin=PASSWORD + "\n")
    assert refused.returncode == 2 and "网格员编号无效" in refused.stderr
    assert run("disable", "zhaoliu").returncode == 0
    assert "[disabled]" in run("list").stdout
    assert run("passwd", "nobody", "--password-stdin", stdin=PASSWORD + "\n").returncode == 1
    seeded = run("seed-demo")
    assert seeded.returncode == 0 and "wangge-demo" in seeded.stdout
    env["WANGGE_PROFILE"] = "production"
    assert run("seed-demo").returncode == 1

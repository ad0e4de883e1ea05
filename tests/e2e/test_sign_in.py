"""People sign in through the front door in a real Chromium at a phone's size: the work screen's sign-in form, the
HttpOnly cookie the page cannot read, signing out everywhere, a coordinator told the work screen is not theirs,
and guessing locked with the reason shown."""
from __future__ import annotations

import httpx
import pytest

from tests.e2e.frontdoor import browser, front_door  # noqa: F401  (fixtures)
from tests.e2e.test_work_screen import css, fill_sign_in, text_in

pytestmark = pytest.mark.e2e

PASSWORD = "sign-in-e2e-password"


async def phone(browser) -> None:
    await browser.run(browser.driver.execute_cdp_cmd, "Emulation.setDeviceMetricsOverride",
                      {"width": 360, "height": 780, "deviceScaleFactor": 2, "mobile": True})


async def test_an_operator_signs_in_to_the_work_screen_and_out_again(street, front_door, browser):
    people = street.supervision.app.state.people
    await people.add(username="e2e-op", display_name="值班员 李娜", kind="operator", password=PASSWORD)
    await phone(browser)
    await browser.get(front_door.url + "/")
    await browser.wait_for(css("#wg-username"), message="the sign-in form")
    await browser.screenshot("sign-in-phone")
    await fill_sign_in(browser, "e2e-op", PASSWORD)
    await browser.wait_for(css("body[data-ready] #queues"), message="the work screen after signing in")
    await browser.wait_for(text_in("#who", "值班员 李娜"), message="who is signed in")
    # The session is an HttpOnly cookie: the page's script cannot read it, nothing is in web storage.
    assert "wangge_session" not in await browser.script("return document.cookie")
    assert await browser.script("return sessionStorage.length + localStorage.length") == 0
    cookie = next(c for c in await browser.run(browser.driver.get_cookies) if c["name"] == "wangge_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    # Reloading keeps the person signed in (the cookie), without the form.
    await browser.get(front_door.url + "/")
    await browser.wait_for(css("body[data-ready] #queues"), message="still signed in after a reload")
    await browser.run((await browser.wait_for(css("#wg-sign-out"))).click)
    await browser.wait_for(css("#wg-username"), message="the sign-in form after signing out")
    # Signed out everywhere: the old cookie is refused through the front door.
    async with httpx.AsyncClient(base_url=front_door.url, timeout=15,
                                 cookies={"wangge_session": cookie["value"]}) as client:
        assert (await client.get("/api/v1/sessions")).status_code == 401
        assert (await client.get("/api/v1/cases")).status_code == 401


async def test_a_coordinator_is_told_the_work_screen_is_not_theirs(street, front_door, browser):
    await street.supervision.app.state.people.add(username="e2e-w001", display_name="网格员001", kind="coordinator",
                                                  worker_id="W001", password=PASSWORD)
    await phone(browser)
    await browser.get(front_door.url + "/")
    await fill_sign_in(browser, "e2e-w001", PASSWORD)
    await browser.wait_for(text_in("#wg-role-error", "不能使用本页面"), message="the wrong role told so")
    await browser.screenshot("wrong-role")
    await browser.run((await browser.wait_for(css("#wg-switch"))).click)
    await browser.wait_for(css("#wg-username"), message="the sign-in form again")


async def test_guessing_at_the_sign_in_form_is_locked_with_the_reason_shown(street, front_door, browser):
    await street.supervision.app.state.people.add(username="e2e-locked", display_name="被猜者", kind="operator",
                                                  password=PASSWORD)
    await browser.get(front_door.url + "/")
    for n in range(5):
        await fill_sign_in(browser, "e2e-locked", f"guess-{n}")
        words = "用户名或密码错误" if n < 4 else "登录尝试次数过多"
        await browser.wait_for(text_in("#wg-sign-in-error", words), message=f"attempt {n + 1} answered")
        await browser.wait_for(css("#wg-sign-in:not([disabled])"))
    await fill_sign_in(browser, "e2e-locked", PASSWORD)
    await browser.wait_for(text_in("#wg-sign-in-error", "分钟后再试"), message="locked even for the right password")


async def test_a_session_ended_while_working_brings_the_form_back_over_the_page(street, front_door, browser):
    people = street.supervision.app.state.people
    await people.add(username="e2e-ended", display_name="值班员 赵磊", kind="operator", password=PASSWORD)
    await browser.get(front_door.url + "/")
    await fill_sign_in(browser, "e2e-ended", PASSWORD)
    await browser.wait_for(css("body[data-ready] #queues"), message="the work screen")
    # An administrator sets a new password: the session ends on every service.
    await people.set_password("e2e-ended", "the-new-password")
    await browser.run((await browser.wait_for(css('#queues a[data-queue="all"]'))).click)
    await browser.wait_for(text_in("#wg-sign-in-error", "登录已失效"), message="the form back, saying why")
    await fill_sign_in(browser, "e2e-ended", "the-new-password")
    await browser.wait_for(lambda d: not d.find_elements("css selector", "#wg-sign-in-page"), message="the form gone")
    assert await browser.script("return document.body.dataset.ready") == "1"  # the same page, not reloaded
    await browser.run((await browser.wait_for(css('#queues a[data-queue="held"]'))).click)
    await browser.wait_for(css("#list table, #list p"), message="the list answers again")


async def test_an_operator_signed_in_opens_the_big_screen_without_its_token(street, front_door, browser):
    await street.supervision.app.state.people.add(username="e2e-wall", display_name="值班员 周强", kind="operator",
                                                  password=PASSWORD)
    await browser.get(front_door.url + "/")
    await fill_sign_in(browser, "e2e-wall", PASSWORD)
    await browser.wait_for(css("body[data-ready] #queues"), message="the work screen")
    await browser.get(front_door.url + "/screen")
    # The screen's figures come from the APIs with the cookie: the token box stays hidden, nothing is refused. (No
    # live-figures process behind this front door: the statistics from supervision are what it shows.)
    await browser.wait_for(lambda d: d.execute_script(
        "return window.wanggeScreen && window.wanggeScreen.ready && window.wanggeScreen.stats !== null"), 30,
        "the screen's statistics")
    assert await browser.script("return document.getElementById('sign-in').hidden") is True
    assert await browser.script("return sessionStorage.length") == 0

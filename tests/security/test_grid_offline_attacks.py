"""Attacks on the coordinator's page working without signal (/grid/, its service worker and the coordinator
remembered on the phone): on a shared phone, after 退出登录 nobody opens the page offline as the one signed out
(the form, saying why; no worker id, nothing remembered); the kept shell never holds an API answer or a photo,
even after the page read the coordinator's own reports through its worker; the worker's scope is /grid/ only."""
from __future__ import annotations

import asyncio

import pytest

from tests.e2e.conftest import mail_sink, sms_gateway, street  # noqa: F401  (fixtures)
from tests.e2e.frontdoor import front_door  # noqa: F401  (fixture)
from tests.e2e.test_grid_offline import KEPT, front_door_down, front_door_up, offline
from tests.e2e.test_phone_pages import click, people, phone, sign_in  # noqa: F401  (fixtures)
from tests.e2e.test_work_screen import css, text_in

pytestmark = pytest.mark.e2e


async def test_after_signing_out_the_page_does_not_open_offline_as_the_coordinator(people, front_door, phone):
    await sign_in(phone, f"{front_door.url}/grid/", "w001")
    await phone.wait_for(lambda d: d.execute_script("return !!navigator.serviceWorker.controller"), timeout=30,
                         message="the page under its worker")
    # The worker only covers the coordinator's page.
    scopes = await phone.script("return (await navigator.serviceWorker.getRegistrations()).map((r) => r.scope)")
    assert scopes == [f"{front_door.url}/grid/"], scopes
    # The page reads the coordinator's own reports (API answers through the worker's scope): none is kept.
    await phone.get(f"{front_door.url}/grid/#/mine")
    await phone.wait_for(css("#my-reports"), timeout=20, message="their own reports")
    kept = await phone.script(KEPT)
    assert kept and not [p for p in kept if p.startswith(("/api/", "/media/"))], kept

    await click(phone, "#wg-sign-out")
    await phone.wait_for(css("#wg-sign-in-page"), timeout=20, message="signed out")
    assert await phone.script("return localStorage.getItem('wangge.session.offline')") is None

    restarted = None
    try:
        await offline(phone, True)
        await front_door_down(front_door)
        await phone.get(f"{front_door.url}/grid/")
        await phone.wait_for(text_in("#wg-sign-in-error", "当前无信号"), timeout=30, message="the form, saying why")
        assert not await phone.script("return document.body.dataset.worker"), "opened as the coordinator signed out"
        assert not await phone.script("return !!document.getElementById('report-form')")
        restarted = await front_door_up(front_door)
    finally:
        if restarted is not None and restarted.returncode is None:
            restarted.send_signal(3)  # SIGQUIT: graceful
            await asyncio.wait_for(restarted.wait(), 10)

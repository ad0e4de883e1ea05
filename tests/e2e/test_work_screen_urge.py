"""The work screen in a real headless Chromium: escalation levels and states read in Chinese, never as codes,
and an operator presses 督办 on a case — the owner gets task.urged with the note, the timeline shows it."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from shared.clock import now
from shared.contracts.cases import CaseReported
from tests.e2e.frontdoor import browser, front_door  # noqa: F401  (fixtures)
from tests.e2e.test_work_screen import (  # noqa: F401  (operator_street is a fixture)
    UNIT_GRID, css, operator_street, sign_in, state_of, submit_accepted, text_in,
)
from tests.support import TopicReader, publish

pytestmark = pytest.mark.e2e

CODES = ("leadership", "command_center", "dispatched", "in_progress", "case.urged", "case.escalated")


async def test_levels_read_in_chinese_and_an_operator_urges_the_holder(operator_street, front_door, browser):
    street = operator_street
    topics = street.intake.runtime.topics
    dispatched = await submit_accepted(street)
    await state_of(street, dispatched, "dispatched")
    # A report held for ten days: the command center's own stage is long overdue and went to the leadership.
    held_id, held_no = f"ws-held-{uuid.uuid4().hex[:6]}", f"20261120-{uuid.uuid4().int % 10000:04d}"
    held = CaseReported(case_no=held_no, source="hotline", external_id=f"x-{held_id}", category="CM04",
                        description="垃圾堆放", observed_at=now(), unit_grid=UNIT_GRID) \
        .envelope(source="intake", case_id=held_id, occurred_at=now() - timedelta(days=10))
    async with TopicReader(street.settings.kafka_bootstrap, topics.cases, topics.tasks("huanwei")) as seen:
        await publish(street.settings.kafka_bootstrap, topics.cases, held, key=held_id)
        await seen.wait_for(lambda m: m["type"] == "case.escalated" and m["case_id"] == held_id, 30)

        await sign_in(browser, front_door.url)
        await browser.get(f"{front_door.url}/#/case/{held_no}")
        await browser.wait_for(text_in(f'article.case[data-case="{held_no}"] dl.facts', "街道领导"),
                               message="the case's 督办级别 in Chinese")
        page = await browser.script("return document.querySelector('article.case').innerText")
        assert "受理派遣" in page and "升级督办" in page and "升级至 街道领导" in page
        assert not [code for code in CODES if code in page], page
        await browser.screenshot("escalated-to-leadership")

        await browser.get(f"{front_door.url}/#/case/{dispatched}")
        note = await browser.wait_for(css(f'article.case[data-case="{dispatched}"] input[name="note"]'),
                                      message="the 督办 form of a dispatched case")
        await browser.run(note.send_keys, "群众反映强烈，请今日内处置")
        await browser.run((await browser.wait_for(css('[data-action="urge"]'))).click)
        await browser.wait_for(text_in("#notice", "已督办"), message="the urge confirmed")
        told = await seen.wait_for(lambda m: m["type"] == "task.urged" and m["data"]["case_no"] == dispatched, 30)
        assert told["data"]["note"] == "群众反映强烈，请今日内处置"
        await browser.wait_for(text_in(f'article.case[data-case="{dispatched}"] .timeline', "群众反映强烈"),
                               message="the urge in the case's timeline")
        page = await browser.script("return document.querySelector('article.case').innerText")
        assert "已派遣" in page and "督办" in page
        assert not [code for code in CODES if code in page], page
        await browser.screenshot("urged")

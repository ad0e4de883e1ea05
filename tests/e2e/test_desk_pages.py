"""The phone pages at a desk's size (1366×860) in Debian's headless Chromium, behind the front door, on the real
services: /owner/ (an owner's staff at the office), /grid/ (a coordinator back at the community office) and /my/ (a
resident on a laptop). Each signs in, sees its list, opens a task or case and acts on it, and the layout holds at
that size: no horizontal scrolling, the content is a readable column in the middle of the window (not a phone's
strip on the left edge), and the buttons of the view are visible and take the click themselves (elementFromPoint
at their centres: nothing lies over them). docs/screenshots/owner-desk.png is a copy of the owner's desk view
(WANGGE_UPDATE_DOC_SHOTS=1 renews it)."""
from __future__ import annotations

import re
import uuid
from typing import AsyncIterator

import pytest

from tests.e2e.frontdoor import Browser, chromium, front_door  # noqa: F401  (fixture)
from tests.e2e.test_phone_pages import (IN_W001_GRID, OWNER_TOKEN, PASSWORD, attach, case_state, cdp, click, client,
                                        jpeg, people, shot, stand_in_w001_grid, terminal_report,
                                        type_into)  # noqa: F401  (fixtures)
from tests.e2e.test_resident_page import sink_text
from tests.e2e.test_work_screen import css, text_in

pytestmark = pytest.mark.e2e

WIDTH, HEIGHT = 1366, 860
# The narrowest column a desk page may show its content in: wider than any phone, so a page that kept its 360 px
# phone layout (or shrank to it) fails.
MIN_COLUMN = 640


@pytest.fixture
async def desk(request: pytest.FixtureRequest) -> AsyncIterator[Browser]:
    """Debian's headless Chromium as an office computer: a 1366×860 page, a mouse (no touch), zh-CN."""
    async with chromium(request, WIDTH, HEIGHT, viewport=True) as browser:
        yield browser


# Measures the page as it stands: the document's width against the window's, the content column's box, and for
# every visible button (or link styled as one) of `controls`, whether the element at its centre is itself (or
# inside it) once it is scrolled into the middle of the window.
_LAYOUT_JS = """
const [column, controls] = arguments;
const box = (el) => { const r = el.getBoundingClientRect(); return {left: r.left, right: r.right, top: r.top,
                                                                     bottom: r.bottom, width: r.width, height: r.height}; };
const col = document.querySelector(column);
// clientWidth: the window less its vertical scroll bar, the width a page has to lay itself out in.
const out = {inner: document.scrollingElement.clientWidth, scroll: document.scrollingElement.scrollWidth,
             column: col ? box(col) : null, controls: 0, blocked: []};
for (const el of document.querySelectorAll(controls)) {
  if (el.closest('[hidden]') || getComputedStyle(el).visibility === 'hidden' || !el.getClientRects().length) continue;
  el.scrollIntoView({block: 'center', inline: 'center'});
  const r = el.getBoundingClientRect();
  const x = r.left + r.width / 2, y = r.top + r.height / 2;
  const hit = document.elementFromPoint(x, y);
  out.controls += 1;
  const name = (el.dataset.action || el.id || el.textContent || el.tagName).trim().slice(0, 30);
  if (r.width < 16 || r.height < 16) out.blocked.push(`${name}: too small (${r.width}×${r.height})`);
  else if (x < 0 || x > window.innerWidth || y < 0 || y > window.innerHeight) out.blocked.push(`${name}: off screen`);
  else if (!hit || !(hit === el || el.contains(hit))) out.blocked.push(`${name}: covered by <${hit ? hit.tagName.toLowerCase() + (hit.className ? '.' + hit.className : '') : 'nothing'}>`);
}
window.scrollTo(0, 0);
return out;
"""


async def layout_holds(desk: Browser, what: str, column: str, controls: str, min_controls: int = 1,
                       min_width: int = MIN_COLUMN) -> dict:
    """The desk layout of the view on screen: no sideways scrolling, a centred column at least MIN_COLUMN wide (or
    the whole width), and every control of `controls` visible and the one taking a click at its centre."""
    seen = await desk.script(_LAYOUT_JS, column, controls)
    assert seen["scroll"] <= seen["inner"], f"{what}: the page scrolls sideways ({seen['scroll']} > {seen['inner']} px)"
    box = seen["column"]
    assert box, f"{what}: no {column} on the page"
    assert box["width"] >= min_width, f"{what}: the content is a {box['width']:.0f} px strip on a {WIDTH} px desk"
    left, right = box["left"], seen["inner"] - box["right"]
    assert abs(left - right) <= 2 or box["width"] >= 0.9 * seen["inner"], \
        f"{what}: the content column is not centred ({left:.0f} px left, {right:.0f} px right)"
    assert seen["controls"] >= min_controls, f"{what}: only {seen['controls']} of {controls} shown"
    assert not seen["blocked"], f"{what}: controls not clickable: {seen['blocked']}"
    return seen


async def sign_in(desk: Browser, url: str, username: str) -> None:
    await desk.get(url)
    field = await desk.wait_for(css("#wg-username"), message="the sign-in form")
    # The sign-in card is narrow by design (two fields), but in the middle of the window.
    await layout_holds(desk, "the sign-in form", "#wg-sign-in-page form", "#wg-sign-in", 1, min_width=300)
    await desk.run(field.send_keys, username)
    await desk.run((await desk.wait_for(css("#wg-password"))).send_keys, PASSWORD)
    await desk.run((await desk.wait_for(css("#wg-sign-in"))).click)
    await desk.wait_for(css("body[data-ready] #view"), message="the page after signing in")


async def test_the_owner_page_at_a_desk(people, front_door, desk):
    street = people
    case_no = await terminal_report(street, "单位门口垃圾箱破损，垃圾外溢")
    await case_state(street, case_no, "dispatched")

    await sign_in(desk, f"{front_door.url}/owner/", "huanwei")
    row = f'li.task[data-case="{case_no}"]'
    await desk.wait_for(css(row), message="the task in the list")
    await layout_holds(desk, "the task list", "#app", "#filters button, form.jump button, li.task a", 8)
    await desk.screenshot("owner-desk-list")

    await click(desk, f"{row} a")
    page = f'article.task-page[data-case="{case_no}"]'
    await desk.wait_for(css(f'{page}[data-state="dispatched"]'), message="the task page")
    await desk.wait_for(css('#task-map[data-ready="1"]'), message="the street's map")
    await layout_holds(desk, "a new task", "#app", "#task-actions button", 2)
    await click(desk, '[data-action="accepted"]')
    await desk.wait_for(css(f'{page}[data-state="in_progress"]'), message="signed: in progress")
    await desk.wait_for(css('[data-action="resolved"]'), message="the forms of a task in progress")
    await layout_holds(desk, "a task in progress", "#app", "#task-actions button, #task-actions .file-button", 6)
    # A desk shows the task's work beside its place and history (both in view), not one long phone column.
    halves = await desk.script("""const box = (s) => document.querySelector(s).getBoundingClientRect();
        const [work, side] = [box('.task-main'), box('.task-side')];
        return {work_right: work.right, side_left: side.left, side_top: side.top, work_top: work.top};""")
    assert halves["work_right"] <= halves["side_left"] and abs(halves["side_top"] - halves["work_top"]) < 40, halves
    await shot(desk, "owner-desk", "owner-desk.png")
    await type_into(desk, 'form[data-form="progress"] textarea[name="note"]', "已联系厂家，明日更换")
    await click(desk, '[data-action="progress"]')
    await desk.wait_for(text_in("#notice", "报告进展"), timeout=30, message="the progress taken")
    await desk.wait_for(text_in("#history", "已联系厂家"), timeout=30, message="the progress in the history")


async def test_the_coordinator_page_at_a_desk(people, front_door, desk, tmp_path):
    street = people
    # A resolved case in W001's grid waits for its on-site check.
    to_check = await terminal_report(street, "办公楼前垃圾箱满溢")
    await case_state(street, to_check, "dispatched")
    async with client(street.supervision, OWNER_TOKEN) as owner:
        for update in ({"type": "task.accepted"}, {"type": "task.resolved", "result": "已清运", "media": []}):
            answer = await owner.post(f"/api/v1/tasks/{to_check}/updates", json=update)
            assert answer.status_code == 200, answer.text
    await case_state(street, to_check, "resolved")

    await stand_in_w001_grid(desk, front_door.url)
    await sign_in(desk, f"{front_door.url}/grid/", "w001")
    await desk.wait_for(css('#grid-map[data-ready="1"]'), message="the map of W001's grids")
    await layout_holds(desk, "the report form", "#app", "nav.tabs a, #locate, #send, #report-form .file-button", 6)
    words = "办公室楼下垃圾箱破损（在电脑上报）"
    await type_into(desk, 'textarea[name="description"]', words)
    await desk.wait_for(css('[data-role="suggestions"] .chip.best[data-code="CM04"]'), message="the suggested category")
    await click(desk, "#locate")
    await desk.wait_for(css("#point[data-lon]"), message="the position")
    await attach(desk, '[data-role="photos"]', jpeg(tmp_path / "desk.jpg", (200, 120, 40)))
    await desk.wait_for(css("#report-form .preview img"), message="the photo's preview")
    await layout_holds(desk, "the filled report form", "#app", "#send, #report-form .preview .remove", 2)
    await desk.screenshot("grid-desk-report")
    await click(desk, "#send")
    await desk.wait_for(text_in("#notice", "已上报，案件编号"), timeout=30, message="the report answered")

    await desk.get(f"{front_door.url}/grid/#/mine")
    await desk.wait_for(text_in("#my-reports", words), timeout=20, message="their own reports")
    await layout_holds(desk, "their own reports", "#app", "nav.tabs a", 4)

    await desk.get(f"{front_door.url}/grid/#/checks")
    card = f'#checks li.card[data-case="{to_check}"]'
    await desk.wait_for(css(card), timeout=20, message="the case to check")
    await layout_holds(desk, "the checks", "#app", f'{card} button, {card} .file-button', 2)
    await desk.screenshot("grid-desk-checks")
    await click(desk, f'{card} [data-action="check"]')
    await desk.wait_for(text_in("#notice", "核查通过"), timeout=30, message="the check answered")
    await case_state(street, to_check, "closed")


async def test_the_resident_page_at_a_desk(people, front_door, desk, tmp_path):
    street = people
    number = f"139{uuid.uuid4().int % 10 ** 8:08d}"
    await cdp(desk, "Browser.grantPermissions", {"origin": front_door.url, "permissions": ["geolocation"]})
    await cdp(desk, "Emulation.setGeolocationOverride",
              {"latitude": IN_W001_GRID["lat"], "longitude": IN_W001_GRID["lon"], "accuracy": 10})

    await desk.get(f"{front_door.url}/my/")
    await desk.wait_for(css('#public-list[data-ready="1"]'), message="the public list")
    await desk.wait_for(css('#public-map[data-ready="1"]'), message="the public map")
    await layout_holds(desk, "the street's cases", "#app", "nav.tabs a", 3)

    await click(desk, "#tab-report")
    await layout_holds(desk, "proving the phone", "#app", "#ask-code, #prove", 2)
    await type_into(desk, "#my-phone", number)
    await click(desk, "#ask-code")
    code = (await sink_text(street, number, r"验证码是(\d{6})"))[1]
    await type_into(desk, "#my-code", code)
    await click(desk, "#prove")
    await desk.wait_for(css("#my-report"), message="the report form")
    await attach(desk, 'input[name="photos"]', jpeg(tmp_path / "mine.jpg", (120, 160, 60)))
    await type_into(desk, "#my-description", "小区门口垃圾箱满了（在电脑上报）")
    await desk.wait_for(css('#my-suggestions .chip[data-code="CM04"]'), message="the suggested category")
    await click(desk, "#locate")
    await desk.wait_for(css("#point[data-lon]"), message="the position")
    await desk.wait_for(css('#my-map[data-ready="1"]'), message="the map")
    await layout_holds(desk, "the resident's report form", "#app", "nav.tabs a, #locate, #my-send, #my-report .file-button", 5)
    await desk.screenshot("my-desk-report")
    await click(desk, "#my-send")
    await desk.wait_for(text_in("#notice", "已上报，案件编号"), timeout=30, message="the report answered")
    case_no = re.search(r"\d{8}-\d{4}", await desk.script("return document.getElementById('notice').textContent"))[0]
    await case_state(street, case_no, "dispatched")

    card = f'#my-cases li.case[data-case-no="{case_no}"]'
    await desk.wait_for(text_in(f"{card} ol.replies", "已受理"), timeout=40, message="the case and its reply")
    await click(desk, f"{card} details summary")
    await layout_holds(desk, "their cases", "#app", f'nav.tabs a, {card} [data-action="comment"]', 4)
    await desk.screenshot("my-desk-cases")
    await type_into(desk, f'{card} textarea[name="comment"]', "垃圾还在")
    await click(desk, f'{card} [data-action="comment"]')
    await desk.wait_for(text_in("#notice", "补充说明已送达"), timeout=30, message="the comment taken")

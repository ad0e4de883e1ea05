"""The street edits its reply templates through notify's admin API: list, preview, change with a history; a
broken template is refused with the reason; the next reply uses the new text."""
from __future__ import annotations

import asyncio

import pytest

from shared.contracts.cases import CaseSigned
from tests.notify_running import PHONE, Notify, case_events, until, notify  # noqa: F401 — fixture
from tests.support import grant

pytestmark = pytest.mark.integration

ADMIN = "notify-test-admin-token"


async def _admin(notify: Notify):
    await grant(notify.settings, notify.service, token=ADMIN, name="街道管理员", role="admin")
    return notify.http(token=ADMIN)


async def test_a_template_is_listed_previewed_changed_with_history_and_used(notify: Notify):
    async with await _admin(notify) as admin:
        listed = (await asyncio.wait_for(admin.get("/api/v1/admin/templates"), 10)).json()
        names = {t["name"]: t for t in listed["templates"]}
        assert set(names) >= {"acknowledgement", "survey", "progress_signed", "escalation_leadership"}
        signed = names["progress_signed"]
        assert signed["edited"] is False and signed["version"] == 0 and "20261206-0001" in signed["preview"]
        assert {v["name"] for v in signed["variables"]} == {"signature", "case_no"}

        new = "【{{ signature }}】{{ case_no }}号问题已由责任单位签收，正在处置，请耐心等待。"
        preview = await asyncio.wait_for(admin.post("/api/v1/admin/templates/progress_signed/preview",
                                                    json={"source": new}), 10)
        assert preview.status_code == 200, preview.text
        assert preview.json()["text"] == "【文化路街道】20261206-0001号问题已由责任单位签收，正在处置，请耐心等待。"
        assert preview.json()["segments"] == 1 and preview.json()["within_budget"] is True

        changed = await asyncio.wait_for(admin.put("/api/v1/admin/templates/progress_signed",
                                                   json={"source": new, "note": "措辞更亲切"}), 10)
        assert changed.status_code == 200, changed.text
        assert changed.json()["edited"] is True and changed.json()["version"] == 1
        assert changed.json()["updated_by"] == "admin:街道管理员" and changed.json()["updated_at"].endswith("+08:00")
        history = (await asyncio.wait_for(admin.get("/api/v1/admin/templates/progress_signed/history"), 10)).json()
        [entry] = history["history"]
        assert entry["source"] == new and entry["previous_source"] == signed["default_source"]
        assert entry["changed_by"] == "admin:街道管理员" and entry["note"] == "措辞更亲切"

    # The next progress reply uses the street's text.
    case_id, case_no, reported, accepted = case_events(PHONE)
    signed_event = CaseSigned(case_no=case_no, owner="市政所", update_id="u-1").envelope(source="supervision",
                                                                                       case_id=case_id)
    await notify.cases(reported, accepted, signed_event)
    await asyncio.wait_for(until(lambda: any(f"{case_no}号问题已由责任单位签收" in m["text"]
                                              for m in notify.sms_to(PHONE))), 20)


@pytest.mark.parametrize("source, reason", [
    ("【{{ signature }}】{{ case_no }} {{ phone }}", "unknown variable(s) phone"),
    ("【{{ signature }}】{% if case_no %}{{ case_no }}", "Jinja2 syntax error"),
    ("【{{ signature }}】{{ case_no }" , "Jinja2 syntax error"),
    ("【{{ signature }}】" + "很长的短信内容" * 40, "over the budget"),
    ("   ", "empty"),
    ("{{ case_no.__class__.__mro__ }}", "fails to render"),
])
async def test_a_broken_template_is_refused_with_the_reason_and_nothing_changes(notify: Notify, source, reason):
    async with await _admin(notify) as admin:
        refused = await asyncio.wait_for(admin.put("/api/v1/admin/templates/survey", json={"source": source}), 10)
        assert refused.status_code == 422, refused.text
        assert reason in refused.text
        preview = await asyncio.wait_for(admin.post("/api/v1/admin/templates/survey/preview",
                                                    json={"source": source}), 10)
        if reason != "over the budget":
            assert preview.status_code == 422 and reason in preview.text
        else:
            assert preview.status_code == 200 and preview.json()["within_budget"] is False
        listed = (await asyncio.wait_for(admin.get("/api/v1/admin/templates"), 10)).json()
        survey = next(t for t in listed["templates"] if t["name"] == "survey")
        assert survey["edited"] is False and survey["source"] == survey["default_source"]
        assert (await asyncio.wait_for(admin.get("/api/v1/admin/templates/nosuch/history"), 10)).status_code == 404


async def test_only_the_streets_admin_edits_templates(notify: Notify):
    await grant(notify.settings, notify.service, token="notify-test-operator-token", name="值班员甲", role="operator")
    for token in (None, "notify-test-operator-token", "no-such-token"):
        async with notify.http(token=token) as client:
            for method, path, body in (("GET", "/api/v1/admin/templates", None),
                                       ("PUT", "/api/v1/admin/templates/survey", {"source": "x"}),
                                       ("POST", "/api/v1/admin/templates/survey/preview", {}),
                                       ("GET", "/api/v1/admin/templates/survey/history", None)):
                answer = await asyncio.wait_for(client.request(method, path, json=body), 10)
                assert answer.status_code == (403 if token == "notify-test-operator-token" else 401), (token, path)

"""Who may do what: every endpoint of the four services against every kind of caller, with the status
DESIGN.md's "HTTP surfaces" implies (401 no or bad credential, 403 wrong role, 404 not yours); and
credentials that expire, are revoked, or are demo credentials under the production profile."""
from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
import pytest

from services.supervision.bootstrap import build as build_supervision
from shared.auth import token_hash
from shared.clock import now
from shared.residents import resident_id
from shared.credentials import issued, publish as publish_credentials
from shared.contracts.credentials import CredentialRevoked
from shared.topics import ensure_topics
from tests.e2e.conftest import TERMINAL_TOKEN
from tests.support import grant

pytestmark = pytest.mark.e2e

POINT = {"lon": 117.575168, "lat": 34.871845}
PHONE = "13900004321"
CALLERS = ("none", "bad", "terminal", "hotline", "owner", "other_owner", "operator", "admin", "screen",
           "operator_session", "owner_session", "csrf", "resident")
# People's sessions (POST /api/v1/sessions): the cookie with the pages' header acts as the account's role; "csrf" is an
# operator's cookie without that header, as another site could make a browser send it: refused (403) on every change.
SESSIONS = {"operator_session": "operator", "owner_session": "owner", "csrf": "operator"}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
TOKENS = {"bad": "no-such-token", "terminal": TERMINAL_TOKEN, "hotline": "m-hotline", "owner": "m-owner-huanwei",
          "other_owner": "m-owner-chengguan", "operator": "m-operator", "admin": "m-admin", "screen": "m-screen",
          "resident": "m-resident"}
# Which callers an endpoint admits; everyone else gets 401 (none, bad) or 403 (another role).
SUBMITTERS = {"terminal", "hotline", "operator", "admin", "resident"}  # resident: web reports as the proven phone
RESIDENTS = {"resident"}  # a phone proven on /my/ (notify's one-time code)
OPERATORS = {"operator", "admin"}
ADMINS = {"admin"}
ANY_ROLE = {"terminal", "hotline", "owner", "other_owner", "operator", "admin", "screen"}
# The LED wall's read-only credential (role screen): what the big screen and the Monday report read, nothing more.
WALL = OPERATORS | {"screen"}
OWNERS = {"owner", "other_owner"}
UPLOADERS = {"terminal", "owner", "other_owner", "operator", "resident"}  # POST /api/v1/media
PHOTO_VIEWERS = {"terminal", "owner", "other_owner", "operator", "admin", "resident"}  # GET /media/<id>: then per case (404)
NO_PHOTO = "0" * 64
SOURCE_OF = {"terminal": "terminal", "hotline": "hotline"}  # a terminal cannot pose as the hotline (tested in intake)


def report(external_id: str, **fields) -> dict:
    body = {"source": "hotline", "external_id": external_id, "category": "CM04", "description": "垃圾箱损坏",
            "location": POINT, "address": None, "reporter": {"name": "赵女士", "phone": PHONE}, "coordinator": None,
            "media": [], "observed_at": "2026-11-28T09:00:00+08:00"}
    body.update(fields)
    return body


async def call(service, method: str, path: str, token: str | None, body: dict | None = None, *,
               cookie: str | None = None, page: bool = True) -> httpx.Response:
    """A request with a bearer token, or (cookie) as a signed-in page sends it: the session cookie and, with `page`,
    the X-Requested-With header."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if cookie and page:
        headers["X-Requested-With"] = "wangge"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://w",
                                 headers=headers, cookies={"wangge_session": cookie} if cookie else None,
                                 timeout=15) as http:
        return await asyncio.wait_for(http.request(method, path, json=body), 15)


async def wait_dispatched(street, case_no: str) -> None:
    async def poll() -> None:
        while (await call(street.supervision, "GET", f"/api/v1/cases/{case_no}", "m-operator")).json().get("state") \
                != "dispatched":
            await asyncio.sleep(0.1)
    await asyncio.wait_for(poll(), 30)


def matrix(i, r, s, n, case_no: str, held_no: str) -> list[tuple]:
    """(service, method, path, body, who is admitted) for every endpoint that takes a credential."""
    return [

        (i, "POST", "/api/v1/reports", report("{fresh}"), SUBMITTERS),
        (i, "POST", f"/api/v1/cases/{held_no}/classify", {"category": "CM04"}, OPERATORS),
        (i, "POST", f"/api/v1/cases/{held_no}/locate", {"unit_grid": "3704020010010201"}, OPERATORS),
        (i, "POST", f"/api/v1/cases/{held_no}/reject", {"reason": "重复"}, OPERATORS),
        (i, "POST", f"/api/v1/cases/{held_no}/merge", {"into": case_no}, OPERATORS),
        (i, "POST", "/api/v1/media", None, UPLOADERS),  # admitted, then refused: 415 (not multipart)
        (i, "GET", f"/media/{NO_PHOTO}", None, PHOTO_VIEWERS),  # the uploader's door (tests/e2e/test_media_front_door)
        (i, "GET", f"/media/{NO_PHOTO}/thumbnail", None, PHOTO_VIEWERS),
        (s, "GET", f"/media/{NO_PHOTO}", None, PHOTO_VIEWERS),  # who may see a case carrying it
        (s, "GET", f"/media/{NO_PHOTO}/thumbnail", None, PHOTO_VIEWERS),
        (r, "GET", f"/api/v1/grids/locate?lon={POINT['lon']}&lat={POINT['lat']}", None, ANY_ROLE),
        (r, "GET", "/api/v1/categories", None, ANY_ROLE | RESIDENTS),
        (r, "GET", "/api/v1/owners", None, ANY_ROLE),
        (r, "GET", "/api/v1/grids?level=unit", None, ANY_ROLE),
        (r, "GET", "/api/v1/categories/suggest?text=垃圾箱损坏", None, OPERATORS | {"terminal"} | RESIDENTS),
        (r, "POST", f"/api/v1/cases/{case_no}/dispatch", {"owner": "huanwei", "reason": "测试"}, OPERATORS),
        (s, "GET", "/api/v1/cases", None, WALL),
        (s, "GET", f"/api/v1/cases/{case_no}", None, OPERATORS),
        (s, "GET", "/api/v1/stats/summary", None, OPERATORS),
        (s, "GET", "/api/v1/stats?from=2026-11-01&to=2026-11-30&by=community", None, WALL),
        (s, "GET", "/api/v1/reports/weekly?community=370402001001&week=2026-W48", None, WALL),
        (s, "GET", "/api/v1/reports/ranking?month=2026-11", None, WALL),
        (s, "GET", "/api/v1/reports/assessment?month=2026-11", None, WALL),
        (s, "GET", "/api/v1/reports/year?year=2026", None, WALL),
        (s, "GET", "/api/v1/reports/weekly.pdf?community=370402001001&week=2026-W48", None, OPERATORS),
        (s, "GET", "/api/v1/cases/search?q=垃圾", None, OPERATORS),
        # A coordinator checks the cases of their own unit grid only: this case lies in W004's grid, so the
        # matrix's terminal (W001) is refused it like any other role (tests/security/test_coordinator_access.py).
        (s, "POST", f"/api/v1/cases/{case_no}/check", {"passed": True}, OPERATORS),
        (s, "GET", "/api/v1/coordinator/reports", None, {"terminal"}),
        (s, "GET", "/api/v1/coordinator/checks", None, {"terminal"}),
        (s, "POST", f"/api/v1/cases/{case_no}/extension", {"approved": False}, OPERATORS),
        (s, "POST", f"/api/v1/cases/{case_no}/suspend", {"reason": "等待"}, OPERATORS),
        (s, "POST", f"/api/v1/cases/{case_no}/resume", None, OPERATORS),
        (s, "POST", f"/api/v1/cases/{case_no}/urge", {"note": "请尽快处置"}, OPERATORS),
        (s, "GET", "/api/v1/admin/street-config", None, ADMINS),
        (s, "PUT", "/api/v1/admin/street-config", {"reminder_fraction": 2}, ADMINS),  # admitted, then refused: 422
        (s, "GET", "/api/v1/tasks", None, OWNERS),
        (s, "GET", "/api/v1/tasks?filter=overdue", None, OWNERS),
        (s, "GET", "/api/v1/tasks?order=due_last", None, OWNERS),
        (s, "GET", f"/api/v1/tasks/{case_no}", None, OWNERS),
        (s, "POST", f"/api/v1/tasks/{case_no}/updates", {"type": "task.progress", "note": "在办"}, OWNERS),
        (n, "GET", "/api/v1/deliveries", None, OPERATORS),
        (n, "POST", f"/api/v1/deliveries/{uuid.uuid4()}/resend", None, OPERATORS),
        (n, "POST", "/api/v1/contacts/lookup", {"phone": PHONE}, OPERATORS),
        (n, "GET", "/api/v1/resident/cases", None, RESIDENTS),
        (i, "POST", f"/api/v1/resident/cases/{case_no}/comments", {"text": "还没修好", "client_id": "m-1"},
         RESIDENTS),  # admitted: the terminal reported the case with the phone this resident proved (201)
        (n, "GET", "/api/v1/admin/templates", None, ADMINS),
        (n, "POST", "/api/v1/admin/templates/survey/preview", {}, ADMINS),
        (n, "PUT", "/api/v1/admin/templates/survey", {"source": "{{ nope }}"}, ADMINS),  # admitted, then 422
        (n, "GET", "/api/v1/admin/templates/survey/history", None, ADMINS),
        (n, "GET", "/api/v1/admin/webhooks", None, ADMINS),
        (n, "POST", "/api/v1/admin/webhooks", {"name": "matrix", "url": "ftp://x"}, ADMINS),  # admitted, then 422
        (n, "DELETE", f"/api/v1/admin/webhooks/{uuid.uuid4()}", None, ADMINS),  # admitted, then 404
        (s, "GET", "/api/v1/accounts", None, ADMINS),
        (s, "POST", "/api/v1/accounts", {"username": f"m-{uuid.uuid4().hex[:8]}", "display_name": "矩阵测试",
                                         "kind": "operator", "password": "matrix-password"}, ADMINS),
        (s, "PATCH", "/api/v1/accounts/nobody-here", {"disabled": True}, ADMINS),  # admitted, then 404
    ]


# Endpoints of the four services checked elsewhere in this file, not by the matrix: the residents' own
# (case number + phone, no credential), the SMS gateway's callback (its own gateway token), and people's sign-in
# (username + password; tests/integration/test_sessions.py and tests/security/test_session_attacks.py).
OUTSIDE_THE_MATRIX = {("POST", "/api/v1/my-case"), ("POST", "/api/v1/surveys/{case_no}"), ("POST", "/api/v1/sms/inbound"),
                      ("POST", "/api/v1/sessions"), ("GET", "/api/v1/sessions"), ("DELETE", "/api/v1/sessions"),
                      # The resident page's (/my/): the SMS code and the session it opens (tests/e2e/test_resident_api.py,
                      # tests/security/test_resident_attacks.py), the survey's signed link (the signature is the proof),
                      # and the public map of recent cases (no personal data, tested below).
                      ("POST", "/api/v1/resident/codes"), ("POST", "/api/v1/resident/sessions"),
                      ("GET", "/api/v1/resident/sessions"), ("DELETE", "/api/v1/resident/sessions"),
                      ("GET", "/api/v1/resident/surveys/{token}"), ("POST", "/api/v1/resident/surveys/{token}"),
                      ("GET", "/api/v1/public/cases"), ("GET", "/api/v1/public/grids")}


async def test_every_endpoint_against_every_caller(street):
    services = (street.intake, street.routing, street.supervision, street.notify)
    await ensure_topics(street.settings.kafka_bootstrap,
                        [street.intake.runtime.topics.for_owner(o) for o in ("huanwei", "chengguan")])
    for caller in ("hotline", "operator", "admin", "screen"):
        await grant(street.settings, *services, token=TOKENS[caller], name=caller, role=caller)
    await grant(street.settings, *services, token=TOKENS["owner"], name="环卫所", role="owner", owner_code="huanwei")
    await grant(street.settings, *services, token=TOKENS["other_owner"], name="城管", role="owner", owner_code="chengguan")
    # A resident's credential is named by the opaque id of the phone its code proved: the matrix's reports give PHONE.
    await grant(street.settings, *services, token=TOKENS["resident"], role="resident",
                name=resident_id(street.settings.resident_secret(), PHONE))
    made = await call(street.intake, "POST", "/api/v1/reports", "m-hotline", report(f"m-{uuid.uuid4().hex[:6]}"))
    assert made.status_code == 201, made.text
    case_no = made.json()["case_no"]
    held = await call(street.intake, "POST", "/api/v1/reports", "m-hotline",
                      report(f"m-{uuid.uuid4().hex[:6]}", category=None, location=None, address="某处"))
    held_no = held.json()["case_no"]
    await wait_dispatched(street, case_no)

    i, r, s, n = street.intake, street.routing, street.supervision, street.notify
    people = s.app.state.people
    await people.add(username="m-op", display_name="矩阵值班员", kind="operator", password="matrix-password")
    await people.add(username="m-huanwei", display_name="矩阵环卫所", kind="owner", owner_code="huanwei",
                     password="matrix-password")
    cookies = {}
    for caller, username in (("operator_session", "m-op"), ("owner_session", "m-huanwei")):
        signed = await people.sign_in(username, "matrix-password", "127.0.0.1")
        cookies[caller] = signed.token
    cookies["csrf"] = cookies["operator_session"]

    async def learnt_everywhere() -> None:  # the sessions reached every service's registry table
        for service in (i, r, n):
            for cookie in set(cookies.values()):
                while not await service.runtime.pool.fetchval("SELECT 1 FROM credentials WHERE token_sha256 = $1",
                                                              token_hash(cookie)):
                    await asyncio.sleep(0.1)
    await asyncio.wait_for(learnt_everywhere(), 30)
    endpoints = matrix(i, r, s, n, case_no, held_no)
    seen: dict[tuple[str, str], dict[str, int]] = {}
    for service, method, path, body, admitted in endpoints:
        for caller in CALLERS:
            payload = body
            if body and body.get("external_id") == "{fresh}":  # a new report, of a source this caller speaks for
                payload = report(f"m-{uuid.uuid4().hex[:6]}", source=SOURCE_OF.get(caller, "web"))
            answer = await call(service, method, path, TOKENS.get(caller), payload, cookie=cookies.get(caller),
                                page=caller != "csrf")
            seen.setdefault((method, path), {})[caller] = answer.status_code
            if caller in ("none", "bad"):
                expected = {401}
            elif caller == "csrf" and method in UNSAFE:
                expected = {403}
                assert "X-Requested-With" in answer.json()["detail"], (method, path, answer.text)
            elif SESSIONS.get(caller, caller) not in admitted:
                expected = {403}
            else:
                expected = set(range(200, 500)) - {401, 403}
            assert answer.status_code in expected, (method, path, caller, answer.status_code, answer.text)
            assert answer.status_code < 500
    # Not yours: an owner updating another owner's task is told it does not exist.
    updates = seen[("POST", f"/api/v1/tasks/{case_no}/updates")]
    assert updates["owner"] == 409 and updates["other_owner"] == 404  # progress before signing; not its task
    read = seen[("GET", f"/api/v1/tasks/{case_no}")]
    assert read["owner"] == 200 and read["other_owner"] == 404  # its own task; another's is as unknown
    listed = await call(s, "GET", "/api/v1/tasks", TOKENS["other_owner"])
    assert case_no not in listed.text
    # The owner's staff, signed in, acts for the same owner code as the owner's credential.
    assert seen[("POST", f"/api/v1/tasks/{case_no}/updates")]["owner_session"] == 409

    # Public: health, readiness, metrics on every service.
    for service in (i, r, s, n):
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await call(service, "GET", path, None)).status_code == 200, path
    # Public: the Open311 reads (no reporter in them); posting needs an api_key.
    for path in ("/open311/v2/services.json", f"/open311/v2/requests/{case_no}.json", "/open311/v2/requests.xml",
                 "/open311/v2/services/CM04.xml", "/open311/v2/servicerequestupdates.xml"):
        answer = await call(i, "GET", path, None)
        assert answer.status_code == 200 and PHONE not in answer.text, path
    assert (await call(i, "POST", "/open311/v2/requests.json", None)).status_code == 403
    # Public: an Open311 photo by its public id (tests/security/test_open311_photos.py); an unknown one is a 404 to
    # everyone, never a 401: the public id is the only key.
    assert (await call(i, "GET", f"/open311/v2/media/{'0' * 32}.jpg", None)).status_code == 404
    # Public: the street's recent cases on the map, without a word of the report or its reporter.
    public = await call(s, "GET", "/api/v1/public/cases", None)
    assert public.status_code == 200 and case_no in public.text, public.text
    assert PHONE not in public.text and "赵" not in public.text and "description" not in public.text
    assert set(public.json()["cases"][0]) == {"case_no", "category", "status", "status_label", "reported_at", "location"}
    assert (await call(i, "POST", "/open311/v2/servicerequestupdates.xml", None)).status_code == 403
    # Residents: their own case with its number and their phone; a wrong phone is the same 404 as no case.
    right = await call(n, "POST", "/api/v1/my-case", None, {"case_no": case_no, "phone": PHONE})
    wrong = await call(n, "POST", "/api/v1/my-case", None, {"case_no": case_no, "phone": "13000000000"})
    nothing = await call(n, "POST", "/api/v1/my-case", None, {"case_no": "19990101-0001", "phone": PHONE})
    assert right.status_code == 200 and wrong.status_code == 404 and nothing.status_code == 404
    assert wrong.json()["detail"] == nothing.json()["detail"]
    survey_wrong = await call(n, "POST", f"/api/v1/surveys/{case_no}", None, {"phone": "13000000000", "verdict": "satisfied"})
    survey_right = await call(n, "POST", f"/api/v1/surveys/{case_no}", None, {"phone": PHONE, "verdict": "satisfied"})
    assert survey_wrong.status_code == 404 and survey_right.status_code == 409  # not closed yet: no survey open


async def test_expired_revoked_and_demo_credentials_are_refused(street):
    services = (street.intake, street.routing, street.supervision, street.notify)
    settings = street.settings
    await publish_credentials(settings, [
        issued("m-expired", name="过期", role="operator", expires_at=now() - timedelta(minutes=1)),
        issued("m-soon", name="将过期", role="operator", expires_at=now() + timedelta(seconds=3)),
    ])
    await grant(settings, *services, token="m-revoked", name="将撤销", role="operator")
    paths = [(street.intake, "POST", "/api/v1/cases/19990101-0001/reject", {"reason": "x"}),
             (street.routing, "GET", "/api/v1/owners", None),
             (street.supervision, "GET", "/api/v1/cases", None),
             (street.notify, "GET", "/api/v1/deliveries", None)]
    for service, method, path, body in paths:
        assert (await call(service, method, path, "m-revoked", body)).status_code != 401
    await publish_credentials(settings, [CredentialRevoked(token_sha256=token_hash("m-revoked"), reason="离职")])

    async def refused_everywhere(token: str) -> None:
        for service, method, path, body in paths:
            while (await call(service, method, path, token, body)).status_code != 401:
                await asyncio.sleep(0.1)
    # Revocation takes effect on all four services within seconds.
    await asyncio.wait_for(refused_everywhere("m-revoked"), 10)
    await asyncio.wait_for(refused_everywhere("m-expired"), 10)
    await asyncio.sleep(3)
    await asyncio.wait_for(refused_everywhere("m-soon"), 10)

    # The production profile refuses demo credentials, and will not issue them.
    production = settings.model_copy(update={"profile": "production"})
    supervision = build_supervision(production, manage_runtime=False)
    await asyncio.wait_for(supervision.runtime.start(), 60)
    try:
        await publish_credentials(settings, [issued("demo-operator-token", name="演示", role="operator", demo=True),
                                             issued("m-real", name="真实", role="operator")])
        await grant(settings, supervision, token="m-real-2", name="真实2", role="operator")
        assert (await call(supervision, "GET", "/api/v1/cases", "m-real-2")).status_code == 200
        assert await supervision.runtime.pool.fetchval(
            "SELECT demo FROM credentials WHERE token_sha256 = $1", token_hash("demo-operator-token"))
        assert (await call(supervision, "GET", "/api/v1/cases", "demo-operator-token")).status_code == 401
    finally:
        await asyncio.wait_for(supervision.runtime.stop(), 30)


def test_the_matrix_covers_every_endpoint_of_every_service(base_settings):
    """An endpoint added to a service without a row in the matrix (who may call it) fails here."""
    import re

    from services.intake.bootstrap import build as build_intake
    from services.notify.bootstrap import build as build_notify
    from services.routing.bootstrap import build as build_routing

    apps = {name: build(base_settings, manage_runtime=False).app for name, build in (
        ("intake", build_intake), ("routing", build_routing), ("supervision", build_supervision), ("notify", build_notify))}
    rows = matrix("intake", "routing", "supervision", "notify", "20261201-0001", "20261201-0002")
    missing, checked = [], 0
    for name, app in apps.items():
        for template, operations in app.openapi()["paths"].items():
            if not template.startswith(("/api/", "/media/")):
                continue  # health, metrics and Open311 are public (tested above)
            pattern = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template))
            for method in (m.upper() for m in operations):
                if (method, template) in OUTSIDE_THE_MATRIX:
                    continue
                checked += 1
                if not any(service == name and m == method and re.fullmatch(pattern, p.split("?")[0])
                           for service, m, p, _, _ in rows):
                    missing.append(f"{name} {method} {template}")
    assert checked > 30, checked  # the documents were read
    assert not missing, f"endpoints with no row in the access matrix: {missing}"

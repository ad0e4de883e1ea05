"""Hostile HTTP on every service: oversize, control characters, deep nesting, broken encodings, and the headers.

All four services run in-process (their runtimes on the real Kafka and PostgreSQL, their apps called
through httpx's ASGI transport). RequestGuard (shared/http.py) refuses before any handler runs, so
each refusal is checked both for its answer (status, `{"detail": …}` naming the field) and for its
absence of effect (the handler was not called, nothing stored).
"""
from __future__ import annotations

import asyncio
import uuid
from typing import Any, AsyncIterator

import httpx
import orjson
import pytest
from fastapi import FastAPI

from services.intake.bootstrap import build as build_intake
from services.notify.bootstrap import build as build_notify
from services.routing.bootstrap import build as build_routing
from services.supervision.bootstrap import build as build_supervision
from shared.http import RequestGuard, check_json_body, docs_csp
from shared.runtime import Service
from shared.settings import Settings
from shared.topics import Topics, ensure_topics
from tests.conftest import delete_topics, drop_schemas
from tests.support import grant

pytestmark = pytest.mark.integration

ADMIN = "hostile-admin"
LIMIT = 64 * 1024
BUILDERS = {"intake": build_intake, "routing": build_routing, "supervision": build_supervision, "notify": build_notify}
# One endpoint per service that reads a JSON body (the residents' my-case needs no credential).
POSTS = {
    "intake": "/api/v1/reports",
    "routing": "/api/v1/cases/20261127-0001/dispatch",
    "supervision": "/api/v1/cases/20261127-0001/suspend",
    "notify": "/api/v1/my-case",
}
# One endpoint per service that needs a credential.
PROTECTED = {
    "intake": ("POST", "/api/v1/cases/20261127-0001/classify"),
    "routing": ("GET", "/api/v1/owners"),
    "supervision": ("GET", "/api/v1/cases"),
    "notify": ("GET", "/api/v1/deliveries"),
}
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}


def report(**changes: Any) -> dict[str, Any]:
    body = {"source": "web", "external_id": f"hostile-{uuid.uuid4().hex[:8]}", "category": "CM04",
            "description": "垃圾箱破损，垃圾外溢", "location": {"lon": 117.575168, "lat": 34.871845},
            "observed_at": "2026-11-27T09:30:00+08:00"}
    body.update(changes)
    return body


@pytest.fixture(scope="module")
async def services(base_settings: Settings) -> AsyncIterator[dict[str, Service]]:
    """The four services of this module, started once, an admin credential granted."""
    tag = uuid.uuid4().hex[:8]
    settings = base_settings.model_copy(update={"topic_prefix": f"t{tag}.", "schema_prefix": f"t{tag}_",
                                                "outbox_poll_seconds": 0.2,
                                                "sms_gateway_url": "http://127.0.0.1:9/sms"})
    await asyncio.wait_for(ensure_topics(settings.kafka_bootstrap, Topics(settings.topic_prefix).fixed()), 30)
    started: dict[str, Service] = {}
    try:
        for name, build in BUILDERS.items():
            service = build(settings, manage_runtime=False)
            await asyncio.wait_for(service.runtime.start(), 60)
            started[name] = service
        for service in started.values():
            await service.runtime.wait_until_consuming(60)
        await grant(settings, *started.values(), token=ADMIN, name="hostile admin", role="admin")
        yield started
    finally:
        for service in reversed(list(started.values())):
            await service.runtime.stop()
        await drop_schemas(settings)
        await delete_topics(settings)


def client(service: Service, token: str | None = ADMIN) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app, raise_app_exceptions=False), base_url="http://wangge", headers=headers)


def assert_refused(answer: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert isinstance(body["detail"], str) and body["detail"]
    for word in words:
        assert word in body["detail"], body
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers[name] == value, name
    return body


async def stored_reports(intake: Service) -> int:
    return await intake.runtime.pool.fetchval("SELECT count(*) FROM reports")


# ---- size ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(POSTS))
async def test_a_body_over_the_limit_is_refused_at_once_from_its_content_length(services, name):
    # Valid JSON (a report padded with white space) that a handler would take: only the size is wrong.
    body = orjson.dumps(report())[:-1] + b" " * LIMIT + b"}"
    async with client(services[name], token=None) as http:
        answer = await http.post(POSTS[name], content=body, headers={"Content-Type": "application/json"})
    # 413, not 401: the guard answers before the credential is even looked at.
    assert_refused(answer, 413, "larger than 65536 bytes")
    assert answer.headers["connection"] == "close"


async def test_an_oversize_report_is_never_seen_by_intake(services, monkeypatch):
    intake = services["intake"]
    seen: list[object] = []
    handlers = type(intake.app.state.intake)
    real_submit = handlers.submit

    async def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(args)
        return await real_submit(self, *args, **kwargs)

    monkeypatch.setattr(handlers, "submit", spy)
    before = await stored_reports(intake)
    padded = orjson.dumps(report())[:-1] + b" " * LIMIT + b"}"

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(padded), 4096):
            yield padded[start:start + 4096]

    async with client(intake) as http:
        with_length = await http.post(POSTS["intake"], content=padded, headers={"Content-Type": "application/json"})
        streamed = await http.post(POSTS["intake"], content=chunks(), headers={"Content-Type": "application/json"})
        fits = await http.post(POSTS["intake"], json=report())
    assert_refused(with_length, 413)
    assert "content-length" not in streamed.request.headers
    assert streamed.request.headers["transfer-encoding"] == "chunked"
    assert_refused(streamed, 413, "larger than")
    assert fits.status_code == 201, fits.text  # the same report within the limit is taken
    assert len(seen) == 1
    assert await stored_reports(intake) == before + 1


async def test_a_chunked_body_is_cut_off_at_the_limit_without_reading_the_rest():
    """RequestGuard alone: a 1 MiB stream stops being read one chunk past the limit; the app is never called."""
    called: list[dict] = []

    async def app(scope: dict, receive: Any, send: Any) -> None:
        called.append(scope)

    guard = RequestGuard(app, max_body_bytes=LIMIT)
    chunk = b"x" * 8192
    reads = 0

    async def receive() -> dict:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": chunk, "more_body": reads < 128}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/v1/reports", "query_string": b"",
             "headers": [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")]}
    await guard(scope, receive, send)
    assert called == []
    assert reads == LIMIT // len(chunk) + 1  # 9 of the 128 chunks
    assert sent[0]["status"] == 413
    assert orjson.loads(sent[1]["body"])["detail"].startswith("the request body is larger than 65536 bytes")


async def test_over_the_wire_a_claimed_10_mb_is_refused_before_a_byte_of_it_is_sent(services):
    """uvicorn in front, a raw socket: the 413 comes back while the client has sent the headers only (or, chunked,
    just past the limit)."""
    import uvicorn

    from tests.e2e.conftest import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(services["intake"].app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /api/v1/reports HTTP/1.1\r\nHost: wangge\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 10000000\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 413 ")
        assert b"x-content-type-options: nosniff" in head.lower()
        writer.close()

        # Chunked: 72 KiB sent of a body that would go on; the answer comes without the client finishing it.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /api/v1/reports HTTP/1.1\r\nHost: wangge\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n" + b"2000\r\n" + b" " * 8192 + b"\r\n")
        for _ in range(8):
            writer.write(b"2000\r\n" + b" " * 8192 + b"\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 413 ")
        writer.close()
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


# ---- control characters -----------------------------------------------------------------------

async def test_nul_in_a_report_description_is_refused_naming_the_field_and_nothing_is_stored(services):
    intake = services["intake"]
    before = await stored_reports(intake)
    async with client(intake) as http:
        escaped = await http.post(POSTS["intake"], json=report(description="垃圾箱\u0000破损"))
        raw = await http.post(POSTS["intake"], content=orjson.dumps(report()).replace("破损".encode(), b"\x00"),
                              headers={"Content-Type": "application/json"})
        nested = await http.post(POSTS["intake"], json=report(reporter={"name": "张\u0007三", "phone": None}))
        key = await http.post(POSTS["intake"], json={**report(), "note\u0000": "x"})
        c1 = await http.post(POSTS["intake"], json=report(address="文化路\u0085 12号", location=None))
        surrogate = await http.post(POSTS["intake"], content=orjson.dumps(report())
                                    .replace("破损".encode(), b"\\ud800"), headers={"Content-Type": "application/json"})
        fine = await http.post(POSTS["intake"], json=report(description="第一行\n第二行\t制表\r\n"))
    body = assert_refused(escaped, 422, "control character in field description", "U+0000")
    assert body["errors"] == [{"field": "description", "error": body["errors"][0]["error"]}]
    assert_refused(raw, 422, "not valid JSON")  # a raw control character is not even JSON
    assert_refused(nested, 422, "field reporter.name", "U+0007")
    assert_refused(key, 422, "the name of field note\\u0000")
    assert_refused(c1, 422, "field address", "U+0085")
    assert_refused(surrogate, 422)
    assert fine.status_code == 201, fine.text  # tab and line breaks are text
    assert await stored_reports(intake) == before + 1


@pytest.mark.parametrize("name, path, body, field", [
    ("intake", "/api/v1/cases/20261127-0001/reject", {"reason": "重复\u0000"}, "reason"),
    ("routing", "/api/v1/cases/20261127-0001/dispatch", {"owner": "huanwei", "reason": "改派\u0000"}, "reason"),
    ("supervision", "/api/v1/cases/20261127-0001/suspend", {"reason": "\u001b[31m"}, "reason"),
    ("supervision", "/api/v1/tasks/20261127-0001/updates", {"type": "task.progress", "note": "a\u0000"}, "note"),
    ("notify", "/api/v1/my-case", {"case_no": "20261127-0001", "phone": "1380000\u00000000"}, "phone"),
    ("notify", "/api/v1/surveys/20261127-0001", {"phone": "13800000000", "verdict": "satisfied",
                                                   "comment": "\u0000"}, "comment"),
])
async def test_a_control_character_in_any_service_s_body_is_a_422_naming_the_field(services, name, path, body, field):
    async with client(services[name]) as http:
        answer = await http.post(path, json=body)
    assert_refused(answer, 422, f"control character in field {field}")


async def test_a_refused_lookup_is_not_even_counted_as_a_failed_try(services):
    notify = services["notify"]
    count = "SELECT count(*) FROM lookup_failures"
    before = await notify.runtime.pool.fetchval(count)
    async with client(notify, token=None) as http:
        answer = await http.post(POSTS["notify"], json={"case_no": "20261127-0001\u0000", "phone": "13800000000"})
    assert_refused(answer, 422, "field case_no")
    assert await notify.runtime.pool.fetchval(count) == before


@pytest.mark.parametrize("name, url, field", [
    ("supervision", "/api/v1/cases?owner=huan%00wei", "query parameter owner"),
    ("supervision", "/api/v1/cases/2026%001127/check", "path parameter case_no"),
    ("notify", "/api/v1/deliveries?case_no=%0120261127", "query parameter case_no"),
    ("routing", "/api/v1/grids/locate?lon=117.1%00&lat=36.6", "query parameter lon"),
    ("intake", "/api/v1/cases/%1b/classify", "path parameter case_no"),
])
async def test_a_control_character_in_a_query_or_path_parameter_is_a_422_naming_it(services, name, url, field):
    async with client(services[name]) as http:
        answer = await (http.get(url) if "check" not in url and "classify" not in url else http.post(url, json={}))
    assert_refused(answer, 422, f"control character in {field}")


# ---- shape and encoding ------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(POSTS))
async def test_json_nested_ten_thousand_deep_is_a_422(services, name):
    async with client(services[name]) as http:
        deep = await http.post(POSTS[name], content=b"[" * 10_000 + b"]" * 10_000,
                               headers={"Content-Type": "application/json"})
        just_too_deep = await http.post(POSTS[name], json=report(media=[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]))
    assert_refused(deep, 422, "nested deeper than 32 levels")
    assert_refused(just_too_deep, 422, "nested deeper than 32 levels")


@pytest.mark.parametrize("name", list(POSTS))
async def test_a_body_that_is_not_utf8_is_a_400(services, name):
    async with client(services[name]) as http:
        latin1 = await http.post(POSTS[name], content='{"reason": "caf\xe9"}'.encode("latin-1"),
                                 headers={"Content-Type": "application/json"})
        utf16 = await http.post(POSTS[name], content='{"reason": "x"}'.encode("utf-16"),
                                headers={"Content-Type": "application/json; charset=utf-16"})
    assert_refused(latin1, 400, "not UTF-8")
    assert_refused(utf16, 400, "not UTF-8")


async def test_what_fastapi_would_let_through_is_a_clear_4xx(services):
    intake = services["intake"]
    before = await stored_reports(intake)
    async with client(intake) as http:
        twice = await http.post(POSTS["intake"], content=orjson.dumps(report())[:-1] + b', "description": "x"}',
                                headers={"Content-Type": "application/json"})
        huge_int = await http.post(POSTS["intake"], content=orjson.dumps(report())[:-1] + b', "n": 1' + b"0" * 5000
                                   + b"}", headers={"Content-Type": "application/json"})
        big = await http.post(POSTS["intake"], json=report(location={"lon": 2 ** 64, "lat": 36.6}))
        infinite = await http.post(POSTS["intake"], content=orjson.dumps(report()).replace(b"117.575168", b"1e999"),
                                   headers={"Content-Type": "application/json"})
        nan = await http.post(POSTS["intake"], content=orjson.dumps(report()).replace(b"117.575168", b"NaN"),
                              headers={"Content-Type": "application/json"})
        a_list = await http.post(POSTS["intake"], json=[report()])
        a_string = await http.post(POSTS["intake"], json="report")
        text = await http.post(POSTS["intake"], content=orjson.dumps(report()), headers={"Content-Type": "text/plain"})
        untyped = await http.post(POSTS["intake"], content=orjson.dumps(report()), headers={"Content-Type": ""})
        truncated = await http.post(POSTS["intake"], content=orjson.dumps(report())[:-10],
                                    headers={"Content-Type": "application/json"})
        bad_length = await http.post(POSTS["intake"], content=b"{}", headers={"Content-Type": "application/json",
                                                                               "Content-Length": "two"})
    assert_refused(twice, 422, "field 'description' appears twice")
    assert_refused(huge_int, 422, "not valid JSON")
    assert_refused(big, 422, "field location.lon is out of range")
    assert_refused(infinite, 422, "not valid JSON")
    assert_refused(nan, 422, "not valid JSON")
    for answer in (a_list, a_string, text, untyped, truncated):
        assert_refused(answer, 422)
    assert bad_length.status_code in (400, 422)  # h11 would not even let this through; the guard says 400
    assert await stored_reports(intake) == before


def test_json_checks_are_cheap_enough_for_every_request():
    import time

    body = orjson.dumps(report(description="垃圾" * 900, media=[f"https://img.example/{i}.jpg" for i in range(20)]))
    started = time.perf_counter()
    for _ in range(1000):
        check_json_body(body, 32)
    assert (time.perf_counter() - started) / 1000 < 0.001  # well under a millisecond for a full-size report


# ---- headers on every answer ------------------------------------------------------------------

@pytest.mark.parametrize("name", list(BUILDERS))
async def test_security_headers_on_every_kind_of_answer(services, name):
    service = services[name]
    app: FastAPI = service.app
    if not any(getattr(route, "path", None) == "/hostile-boom" for route in app.router.routes):
        async def boom() -> None:
            raise RuntimeError("a bug")

        app.add_api_route("/hostile-boom", boom)
    async with client(service, token=None) as http:
        answers = {
            200: await http.get("/healthz"),
            401: await http.request(*PROTECTED[name], json={"category": "CM04"} if name == "intake" else None),
            404: await http.get("/no/such/path"),
            405: await http.delete("/healthz"),
            413: await http.post(POSTS[name], content=b"{" + b" " * LIMIT + b"}",
                                 headers={"Content-Type": "application/json"}),
            422: await http.post(POSTS[name], json={"x": "\u0000"}),
            500: await http.get("/hostile-boom"),
            "metrics": await http.get("/metrics"),
            "openapi": await http.get("/openapi.json"),
        }
    for status, answer in answers.items():
        if isinstance(status, int):
            assert answer.status_code == status, (status, answer.text)
        else:
            assert answer.status_code == 200
        for header, value in SECURITY_HEADERS.items():
            assert answer.headers.get(header) == value, (status, header, dict(answer.headers))
    assert answers[500].json() == {"detail": "internal error; nothing was recorded, retry or report it"}
    assert answers[401].headers["cache-control"] == "no-store"
    assert "cache-control" not in answers[200].headers


async def test_the_docs_pages_get_a_csp_that_admits_exactly_their_assets(services):
    async with client(services["intake"], token=None) as http:
        docs = await http.get("/docs")
        redoc = await http.get("/redoc")
    for page in (docs, redoc):
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert "https://cdn.jsdelivr.net" in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
        assert page.headers["x-frame-options"] == "DENY"
    # Swagger UI's one inline script is allowed by its hash, and only that script.
    assert docs_csp(docs.content) == docs.headers["content-security-policy"]
    assert docs.headers["content-security-policy"].count("'sha256-") == 1


async def test_every_operation_documents_its_refusals_in_the_house_format(services):
    for name, service in services.items():
        document = service.app.openapi()
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                for status, answer in operation["responses"].items():
                    if path.startswith("/open311/") and status.startswith("4"):
                        # Open311 answers every refusal in the GeoReport v2 format (a list of code, description).
                        schema = answer["content"]["application/json"]["schema"]
                        assert schema["type"] == "array" and schema["items"]["required"] == ["code", "description"], \
                            (name, method, path, status)
                        continue
                    if status.startswith("4") or (status == "503" and path.startswith("/api/")):
                        schema = answer["content"]["application/json"]["schema"]
                        assert schema == {"$ref": "#/components/schemas/Refusal"}, (name, method, path, status)
                if operation.get("security"):
                    assert {"401", "403"} <= operation["responses"].keys(), (name, method, path)
                if "requestBody" in operation:
                    assert {"400", "413", "422"} <= operation["responses"].keys(), (name, method, path)
        assert "HTTPValidationError" not in document["components"]["schemas"]

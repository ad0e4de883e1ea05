"""The HTTP surface every service shares: /healthz, /readyz, /metrics, errors as clear 4xx/503.

Hostile input is refused here, once for all four services, before any handler runs (pure ASGI, the
body is never buffered beyond the limit):

- a body over `max_body_bytes` → 413 (at once from Content-Length; a chunked body is counted as it
  arrives and cut off at the limit);
- a JSON or form body that is not UTF-8 → 400; JSON that does not parse → 422; nested deeper than
  `max_json_depth` → 422; a number beyond 64 bits → 422;
- a control character (C0 but tab, line feed and carriage return; DEL; C1) or a lone surrogate in a
  JSON string or key, a form field, a query or path parameter → 422 naming the field: such text can
  never be stored (PostgreSQL refuses NUL) nor shown safely;
- every answer (errors and /metrics included) carries nosniff, DENY, no-referrer and a strict CSP;
  /docs and /redoc get a CSP that admits exactly what FastAPI's pages load; /api/ answers are no-store.

Every refusal keeps the house format `{"detail": "<reason>", "errors": [{"field", "error"}]}`, and
the OpenAPI document says so (`Refusal`, added to every operation's 4xx answers by `create_app`).
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, MutableMapping
from urllib.parse import parse_qsl
from xml.etree import ElementTree

import orjson
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from shared.db import TRANSIENT_DB_ERRORS
from shared.kafka import TRANSIENT_KAFKA_ERRORS
from shared.media import MediaStoreUnavailable
from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# ---- the house format of a refusal, for the OpenAPI documents ------------------------------------

class FieldError(BaseModel):
    """One thing wrong with the request."""

    field: str = Field(description="where: a body field (dotted), a query or path parameter, or empty for the body")
    error: str


class Refusal(BaseModel):
    """Every 4xx (and 503) answer: the reason in words, and for bad input which fields."""

    detail: str = Field(description="why the request was refused, in words (中文 where it helps)")
    errors: list[FieldError] | None = Field(default=None, description="for bad input: each field and what is wrong")


def refusal(description: str, **extra: Any) -> dict[str, Any]:
    """An entry of a route's `responses`: this status answers a Refusal, described."""
    return {"model": Refusal, "description": description, **extra}


# ---- hostile input --------------------------------------------------------------------------------

# C0 controls but \t \n \r, DEL, C1 controls, and lone surrogates (which cannot even be encoded as UTF-8).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# In header values (latin-1 decoded bytes): C0 but tab, and DEL — bytes 0x80–0x9f are UTF-8 continuation bytes there.
_HEADER_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_INT64 = 2 ** 63
DOC_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})


class Refused(Exception):
    """Input refused before any handler: the status, the reason and the field it concerns."""

    def __init__(self, status: int, reason: str, field: str | None = None, error: str | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field
        self.error = error


def _shown(text: str, limit: int = 60) -> str:
    """A field name as it can be quoted in a reason: control characters escaped, cut at `limit`."""
    shown = _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return shown if len(shown) <= limit else shown[:limit] + "…"


def _control(field: str, text: str, where: str = "field") -> Refused:
    char = _CONTROL.search(text)
    assert char is not None
    what = "a lone surrogate" if "\ud800" <= char.group() <= "\udfff" else "control character"
    error = f"{what} U+{ord(char.group()):04X} at position {char.start()}; only tab and line breaks are allowed"
    return Refused(422, f"{what} in {where} {_shown(field) or '(body)'}: U+{ord(char.group()):04X} at position "
                        f"{char.start()} is not allowed in text (含非法控制字符)", field, error)


def inspect_json(value: Any, max_depth: int) -> None:
    """Raise Refused for what no handler may see: too deep, control characters, numbers beyond 64 bits."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            if _CONTROL.search(node):
                raise _control(path, node)
        elif isinstance(node, dict):
            if depth > max_depth:
                raise _too_deep(max_depth, path)
            for key, child in node.items():
                if _CONTROL.search(key):
                    raise _control(f"{path}.{key}" if path else key, key, "the name of field")
                stack.append((child, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(node, list):
            if depth > max_depth:
                raise _too_deep(max_depth, path)
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(node))
        elif isinstance(node, (int, float)) and not isinstance(node, bool) and abs(node) >= _INT64:
            raise Refused(422, f"number in field {_shown(path) or '(body)'} is out of range (beyond 64 bits)",
                          path, "number out of range")


def _too_deep(max_depth: int, path: str = "") -> Refused:
    return Refused(422, f"JSON nested deeper than {max_depth} levels (嵌套过深)", path, f"nested deeper than {max_depth}")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise Refused(422, f"field {_shown(key)!r} appears twice in one object (重复字段)", key, "duplicate key")
        seen[key] = value
    return seen


def check_json_body(body: bytes, max_depth: int) -> None:
    """A JSON body as handlers will see it: UTF-8, well formed, not too deep, no control characters, no twin keys."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refused(400, f"the body is not UTF-8 (byte {exc.start}); send JSON encoded as UTF-8 (请使用UTF-8编码)",
                      "", "not UTF-8") from None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "recursion" in str(exc):
            raise _too_deep(max_depth) from None
        raise Refused(422, f"the body is not valid JSON: {exc} (JSON格式错误)", "", "invalid JSON") from None
    inspect_json(parsed, max_depth)
    # orjson keeps the last of two equal keys silently; the stdlib's hook sees them (depth is bounded by now).
    json.loads(body, object_pairs_hook=_no_duplicate_keys)


def check_form_body(body: bytes) -> None:
    """An application/x-www-form-urlencoded body: UTF-8, no control characters in names or values."""
    try:
        fields = parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise Refused(400, "the form body is not UTF-8 (请使用UTF-8编码)", "", "not UTF-8") from None
    _check_pairs(fields, "field")


def _check_pairs(pairs: list[tuple[str, str]], where: str) -> None:
    for name, value in pairs:
        if _CONTROL.search(name):
            raise _control(name, name, f"the name of {where}")
        if _CONTROL.search(value):
            raise _control(name, value, where)


def _media_type(headers: dict[bytes, bytes]) -> str:
    raw = headers.get(b"content-type", b"").decode("latin-1")
    return raw.split(";", 1)[0].strip().lower()


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


# Open311's error list, as its paths document every refusal (JSON, or XML for a .xml path).
OPEN311_ERROR_CONTENT = {
    "application/json": {"schema": {"type": "array", "items": {
        "type": "object", "required": ["code", "description"],
        "properties": {"code": {"type": "integer"}, "description": {"type": "string"}}}}},
    "application/xml": {"schema": {"type": "string"}},
}


def open311_refusal(path: str, status: int, reason: str, headers: dict[str, str] | None = None) -> Response:
    """A refusal in Open311 GeoReport v2's error format: [{"code", "description"}], or <errors> for a .xml path."""
    if path.endswith(".xml"):
        top = ElementTree.Element("errors")
        error = ElementTree.SubElement(top, "error")
        ElementTree.SubElement(error, "code").text = str(status)
        ElementTree.SubElement(error, "description").text = reason
        body = b'<?xml version="1.0" encoding="utf-8"?>' + ElementTree.tostring(top, encoding="unicode").encode()
        return Response(body, status, headers=headers, media_type="application/xml")
    return JSONResponse([{"code": status, "description": reason}], status, headers=headers)


class RequestGuard:
    """Pure ASGI: refuses oversize, malformed and control-character input before the app reads a byte of it."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = 64 * 1024, max_json_depth: int = 32,
                 body_limits: dict[str, tuple[int, str]] | None = None):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        # Paths that take more than a report (a photo upload): path → (bytes, the reason a larger body gets).
        self.body_limits = body_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            headers = self._check_head(scope)
            limit, too_large = self.body_limits.get(scope.get("path", ""), (self.max_body_bytes, None))
            body = await self._read_body(headers, receive, limit, too_large)
            if body:
                media_type = _media_type(headers)
                if _is_json(media_type):
                    check_json_body(body, self.max_json_depth)
                elif media_type == "application/x-www-form-urlencoded":
                    check_form_body(body)
        except Refused as refused:
            close = {"Connection": "close"} if refused.status == 413 else None
            if scope.get("path", "").startswith("/open311/"):
                # Civic-report clients parse the spec's error list, not the house format.
                response = open311_refusal(scope["path"], refused.status, refused.reason, close)
            else:
                errors = [{"field": refused.field, "error": refused.error}] if refused.error else None
                content: dict[str, Any] = {"detail": refused.reason}
                if errors:
                    content["errors"] = errors
                response = JSONResponse(content, refused.status, headers=close)
            await response(scope, receive, send)
            return
        if body is None:
            await self.app(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _check_head(self, scope: Scope) -> dict[bytes, bytes]:
        """Path, query and headers; the headers by lower-case name."""
        path = scope.get("path", "")
        if _CONTROL.search(path):
            raise self._path_refusal(scope, path)
        query = scope.get("query_string", b"")
        if query:
            try:
                pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="strict")
            except UnicodeDecodeError:
                raise Refused(400, "the query string is not UTF-8 (请使用UTF-8编码)", "", "not UTF-8") from None
            _check_pairs(pairs, "query parameter")
        headers: dict[bytes, bytes] = {}
        for name, value in scope.get("headers", []):
            text = value.decode("latin-1")
            if _HEADER_CONTROL.search(text):
                shown = name.decode("latin-1")
                raise Refused(422, f"control character in header {shown} (含非法控制字符)", shown, "control character")
            headers[name.lower()] = value
        return headers

    @staticmethod
    def _path_refusal(scope: Scope, path: str) -> Refused:
        """A control character in the path, named by the path parameter it falls into (from the documented paths)."""
        app = scope.get("app")
        templates = app.openapi().get("paths", {}) if isinstance(app, FastAPI) else {}
        for template in templates:
            pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
            found = re.fullmatch(pattern, path)
            if found:
                for name, value in found.groupdict().items():
                    if _CONTROL.search(value):
                        return _control(name, value, "path parameter")
        return _control("path", path, "the URL")

    async def _read_body(self, headers: dict[bytes, bytes], receive: Receive, limit: int,
                         too_large: str | None) -> bytes | None:
        """The whole body, at most `limit` bytes; None when the request says it has none."""
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared < 0:
                raise Refused(400, "Content-Length is not a number of bytes", "content-length", "not a number")
            if declared > limit:
                raise self._too_large(limit, too_large)
            if declared == 0:
                return None
        elif b"transfer-encoding" not in headers:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Refused(400, "the client went away before the body was complete", "", "incomplete body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise self._too_large(limit, too_large)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self, limit: int, reason: str | None) -> Refused:
        return Refused(413, reason or f"the request body is larger than {limit} bytes (请求体过大); a report "
                                      "is a few KB — photos are uploaded to POST /api/v1/media and go by URL",
                       "", "too large")


# ---- security headers -----------------------------------------------------------------------------

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script>", re.S)
_COMMON_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def docs_csp(html: bytes) -> str:
    """The CSP of FastAPI's /docs and /redoc pages: their CDN assets, and their inline scripts by hash only."""
    scripts = ["https://cdn.jsdelivr.net"] + [
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'" for script in _INLINE_SCRIPT.findall(html)]
    return "; ".join([
        "default-src 'none'",
        f"script-src {' '.join(scripts)}",
        "style-src https://cdn.jsdelivr.net https://fonts.googleapis.com 'unsafe-inline'",
        "font-src https://fonts.gstatic.com",
        "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly",
        "connect-src 'self'",
        "worker-src blob:",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ])


class SecurityHeaders:
    """Pure ASGI, outermost (outside the 500 handler too): security headers on every answer."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        extra = list(_COMMON_HEADERS)
        if path.startswith("/api/"):
            extra.append((b"cache-control", b"no-store"))

        def with_headers(message: Message, csp: str) -> Message:
            present = {name.lower() for name, _ in message.get("headers", [])}
            added = [(n, v) for n, v in [*extra, (b"content-security-policy", csp.encode())] if n not in present]
            return {**message, "headers": [*message.get("headers", []), *added]}

        if path not in DOC_PATHS:
            async def send_api(message: Message) -> None:
                await send(with_headers(message, API_CSP) if message["type"] == "http.response.start" else message)

            await self.app(scope, receive, send_api)
            return

        # The docs pages are small HTML: hold the page until it is complete, to hash its inline scripts.
        start: Message | None = None
        chunks: list[bytes] = []

        async def send_docs(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    page = b"".join(chunks)
                    await send(with_headers(start, docs_csp(page)))
                    await send({"type": "http.response.body", "body": page, "more_body": False})
            else:
                await send(message)

        await self.app(scope, receive, send_docs)


class _GuardedFastAPI(FastAPI):
    """FastAPI whose whole stack, the 500 handler included, sits inside SecurityHeaders."""

    def build_middleware_stack(self) -> ASGIApp:  # type: ignore[override]
        return SecurityHeaders(super().build_middleware_stack())


# ---- the OpenAPI document tells the truth about refusals -----------------------------------------

# What RequestGuard lets through, as a JSON Schema pattern (ECMA and Python alike): no control characters.
_CONTROLS = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f"
TEXT_PATTERN = rf"^[^{_CONTROLS}]*$"
# For text that is stripped before its length is checked: at least one character that is not white space.
NONBLANK = {"pattern": rf"^[^{_CONTROLS}]*[^\s{_CONTROLS}][^{_CONTROLS}]*$"}


# What the guard lets through in a header: no C0 control but tab, no DEL (other bytes are the header's own encoding).
HEADER_PATTERN = r"^[^\u0000-\u0008\u000a-\u001f\u007f]*$"
_PLAIN_JSON = "#/components/schemas/PlainJson"
_BOUNDS = {"exclusiveMinimum": -_INT64, "exclusiveMaximum": _INT64}
PLAIN_JSON = {
    "description": "any JSON the services take: no control characters in strings or names, numbers within 64 bits",
    "anyOf": [{"type": "string", "pattern": TEXT_PATTERN}, {"type": "number", **_BOUNDS}, {"type": "boolean"},
              {"type": "null"}, {"type": "array", "items": {"$ref": _PLAIN_JSON}},
              {"type": "object", "propertyNames": {"pattern": TEXT_PATTERN}, "additionalProperties": {"$ref": _PLAIN_JSON}}],
}


def _plain_text(node: Any, components: dict[str, Any], seen: set[str], pattern: str = TEXT_PATTERN) -> None:
    """Say in an input schema what RequestGuard refuses: strings without a pattern, format or fixed values get
    `pattern`; open objects take names and values of PlainJson only; numbers stay within 64 bits."""
    if isinstance(node, list):
        for item in node:
            _plain_text(item, components, seen, pattern)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[1]
        if name not in seen and name in components:
            seen.add(name)
            _plain_text(components[name], components, seen, pattern)
    kinds = node.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if kinds == ["string"] and node.get("format") == "date-time":
        # pydantic takes a number as Unix time (seconds, or milliseconds beyond 2e10) wherever it takes a date-time.
        moment = {k: node.pop(k) for k in ("type", "format")}
        node["anyOf"] = [moment, {"type": "number", "minimum": -62135596800000, "exclusiveMaximum": 253402300800000,
                                  "description": "Unix time: seconds within ±2e10, else milliseconds (years 1–9999)"}]
        return
    if "string" in kinds and not ({"pattern", "format", "enum", "const"} & node.keys()):
        node["pattern"] = pattern
    if {"number", "integer"} & set(kinds):
        if not {"maximum", "exclusiveMaximum"} & node.keys():
            node["exclusiveMaximum"] = _INT64
        if not {"minimum", "exclusiveMinimum"} & node.keys():
            node["exclusiveMinimum"] = -_INT64
    if "object" in kinds or "properties" in node:
        if node.get("additionalProperties", True) is True:
            node["additionalProperties"] = {"$ref": _PLAIN_JSON}
        if node["additionalProperties"] is not False:
            node.setdefault("propertyNames", {"pattern": TEXT_PATTERN})
    for key in ("anyOf", "oneOf", "allOf", "items", "prefixItems", "additionalProperties", "not", "then", "else"):
        if key in node:
            _plain_text(node[key], components, seen, pattern)
    for child in node.get("properties", {}).values():
        _plain_text(child, components, seen, pattern)


def _document_refusals(schema: dict[str, Any]) -> None:
    """Every operation's 4xx/503 answers are Refusals: 422 (our format, not FastAPI's), 401/403 where a credential
    is needed, 400/413 where a body is read, 503 where storage is used; a bare 4xx entry gets the Refusal schema."""
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Refusal"}}}
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    refusal_schema = Refusal.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in refusal_schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components.setdefault("Refusal", refusal_schema)
    components.setdefault("PlainJson", PLAIN_JSON)
    seen: set[str] = {"PlainJson"}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            answers: dict[str, Any] = operation["responses"]
            takes_input = bool(operation.get("parameters")) or "requestBody" in operation
            if operation.get("security"):
                answers.setdefault("401", {"description": "no valid credential (需要凭证)"})
                answers["401"].setdefault("headers", {"WWW-Authenticate": {
                    "description": "Bearer", "schema": {"type": "string"}}})
                answers.setdefault("403", {"description": "the credential's role may not do this (无权限)"})
            if takes_input:
                said = answers.get("422", {}).get("description")
                answers["422"] = {"description": "the request does not fit the contract or carries a control character"
                                  + ("; the body is not valid JSON or is nested too deep" if "requestBody" in operation
                                     else "")
                                  + (f"; {said}" if said and said != "Validation Error" else "")}
            if takes_input:
                answers.setdefault("400", {"description": "the body or the query string is not UTF-8"})
                for parameter in operation.get("parameters", []):
                    _plain_text(parameter.get("schema"), components, set(),
                                HEADER_PATTERN if parameter.get("in") == "header" else TEXT_PATTERN)
                for media in operation.get("requestBody", {}).get("content", {}).values():
                    _plain_text(media.get("schema"), components, seen)
            if "requestBody" in operation:
                answers.setdefault("413", {"description": "the body is larger than the service takes (64 KiB)"})
            if path.startswith("/api/"):
                answers.setdefault("503", {"description": "storage is briefly unavailable; nothing was recorded"})
            for status, answer in answers.items():
                if status[0] in "45" and status != "default" and "content" not in answer:
                    answer["content"] = OPEN311_ERROR_CONTENT if path.startswith("/open311/") else ref
                    answer.setdefault("description", "refused")
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused in components and unused not in json.dumps(schema["paths"]):
            del components[unused]


def _documented_methods(app: FastAPI, path: str) -> list[str]:
    """Every method the OpenAPI document gives for paths matching `path` (HEAD with GET, as Starlette serves it)."""
    methods: set[str] = set()
    for template, operations in app.openapi().get("paths", {}).items():
        pattern = "".join("[^/]+" if part.startswith("{") else re.escape(part)
                          for part in re.split(r"(\{[^}]+\})", template))
        if re.fullmatch(pattern, path):
            methods |= {m.upper() for m in operations if m in ("get", "post", "put", "patch", "delete")}
    return sorted(methods | ({"HEAD"} if "GET" in methods else set()))


def create_app(runtime: ServiceRuntime, *, title: str, description: str, manage_runtime: bool = True,
               body_limits: dict[str, tuple[int, str]] | None = None) -> FastAPI:
    """A FastAPI app with the common endpoints; it starts and stops the runtime unless told not to.
    `body_limits`: paths that take a larger body than WANGGE_MAX_BODY_BYTES, with the reason a larger one gets."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_runtime:
            await runtime.start()
        try:
            yield
        finally:
            if manage_runtime:
                await runtime.stop()

    app = _GuardedFastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan)
    app.state.runtime = runtime
    app.add_middleware(RequestGuard, max_body_bytes=runtime.settings.max_body_bytes,
                       max_json_depth=runtime.settings.max_json_depth, body_limits=body_limits)

    plain_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _document_refusals(plain_openapi())
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]

    class Health(BaseModel):
        status: str
        service: str

    class Readiness(BaseModel):
        status: str = Field(description="ready, or not ready")
        checks: dict[str, str] = Field(description="each dependency: ok, or what is wrong")

    @app.get("/healthz", tags=["operations"], response_model=Health,
             responses={503: {"model": Health, "description": "the process cannot go on by itself: restart it"}})
    async def healthz() -> JSONResponse:
        """The process is alive and can go on by itself (its watchdog rebuilt what stalled, or nothing did); 503 with
        the reason when a loop stays stuck, so that the supervisor restarts the process."""
        problem = runtime.problem()
        if problem:
            return JSONResponse({"status": f"needs a restart: {problem}", "service": runtime.name}, 503)
        return JSONResponse({"status": "ok", "service": runtime.name}, 200)

    @app.get("/readyz", tags=["operations"], response_model=Readiness,
             responses={503: {"model": Readiness, "description": "Kafka or PostgreSQL does not answer"}})
    async def readyz() -> JSONResponse:
        """Kafka and PostgreSQL answer and the process can go on by itself: 200, else 503 with what is missing."""
        checks = await runtime.check_ready()
        if problem := runtime.problem():  # not ready either: a drill or a load balancer reading /readyz sees it
            checks["process"] = f"needs a restart: {problem}"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503)

    @app.get("/metrics", tags=["operations"], response_class=Response,
             responses={200: {"description": "Prometheus text exposition",
                              "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}})
    async def metrics() -> Response:
        """Prometheus exposition."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(StarletteHTTPException)
    async def http_refusal(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            # Starlette answers 405 from the first route whose path matched, so a path with a GET and a
            # POST route would list only one of them in Allow: list every method the path really takes.
            methods = _documented_methods(app, request.url.path)
            if methods:
                exc.headers = {**(exc.headers or {}), "Allow": ", ".join(methods)}
        if request.url.path.startswith("/open311/"):
            return open311_refusal(request.url.path, exc.status_code, str(exc.detail), exc.headers)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "error": e["msg"]} for e in exc.errors()
        ]
        reason = "; ".join(f"{e['field'] or '(body)'}: {e['error']}" for e in errors[:5])
        if request.url.path.startswith("/open311/"):
            # Open311 clients know 400 for a bad parameter, not 422.
            return open311_refusal(request.url.path, 400, f"request does not fit the contract: {reason}")
        return JSONResponse({"detail": f"request does not fit the contract: {reason}", "errors": errors}, 422)

    # Its own handler (not the catch-all below, which Starlette re-raises after answering): an answered refusal.
    @app.exception_handler(MediaStoreUnavailable)
    async def photo_store_unavailable(request: Request, exc: MediaStoreUnavailable) -> Response:
        # The photo store (an S3 server) is away: nothing was stored, the photo can be sent again.
        log.warning("request failed on the photo store: %s", exc)
        reason = "the photo store is briefly unavailable; nothing was stored, retry (照片存储暂时不可用，请稍后重试)"
        if request.url.path.startswith("/open311/"):
            return open311_refusal(request.url.path, 503, reason)
        return JSONResponse({"detail": reason}, 503)

    @app.exception_handler(Exception)
    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, (*TRANSIENT_DB_ERRORS, *TRANSIENT_KAFKA_ERRORS)):
            log.warning("request failed on unavailable infrastructure: %s", exc)
            return JSONResponse({"detail": "storage is briefly unavailable; nothing was recorded, retry"}, 503)
        log.exception("unexpected error")
        return JSONResponse({"detail": "internal error; nothing was recorded, retry or report it"}, 500)

    return app

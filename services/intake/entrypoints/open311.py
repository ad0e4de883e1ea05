"""Open311 GeoReport v2 (https://wiki.open311.org/GeoReport_v2), so that existing civic-report clients
work unchanged, both ways: GET services, GET services/{code}, POST requests (form or multipart with `media`),
GET requests, GET requests/{id}, and the service request updates FixMyStreet uses (GET servicerequestupdates:
every public step of a case; POST servicerequestupdates: a resident's comment), each as .json or .xml.
Reads are public; posting needs a credential as the spec's api_key (or a Bearer header).

Every refusal is the spec's error list with its status (400 bad parameters, 403 api_key, 404 unknown).
Lists answer at most 1000 entries a page; more are asked with `page=2`, `page=3`, … (the answer of a full
page carries `Link: <…page=N+1>; rel="next"` and `X-Next-Page: N+1`)."""
from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from services.intake.adapters import repository
from services.intake.domain import open311
from services.intake.domain.open311 import Open311Error, Service
from services.intake.adapters import media as media_sql
from services.intake.comments import CommentRefused, add_comment
from services.intake.domain.photos import PhotoRefused
from services.intake.entrypoints.media import store_photo
from services.intake.commands import Intake, ReportRejected
from services.intake.handlers import public_photos
from shared.auth import Client, client_by_token
from shared.clock import Clock, street_zone
from shared.contracts.reports import ReportSubmitted
from shared.media import MediaStore, media_url
from shared.runtime import ServiceRuntime

FORMATS = ("json", "xml")
PAGE = 1000  # the spec's "at most 1000 requests"; beyond, page=2, 3, …
MAX_IDS = 1000
MAX_PHOTOS = 3
PHOTO_FIELD = re.compile(r"photo[1-9][0-9]?")
ROLES = frozenset({"terminal", "hotline", "operator", "admin"})
_ERROR = {"type": "array", "items": {"type": "object", "required": ["code", "description"],
                                     "properties": {"code": {"type": "integer"}, "description": {"type": "string"}}}}


def _answers(ok: dict[str, Any], *errors: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI answers of an Open311 operation: JSON or XML, errors as the spec's list."""
    xml = {"application/xml": {"schema": {"type": "string"}}}
    answers: dict[int | str, dict[str, Any]] = {200: {"description": "OK", "content": {"application/json": {"schema": ok}, **xml}}}
    for status in errors:
        answers[status] = {"description": "the spec's error list", "content": {"application/json": {"schema": _ERROR}, **xml}}
    return answers


def _list_of(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "object", "properties": properties}}


_SERVICE = _list_of({"service_code": {"type": "string"}, "service_name": {"type": "string"}})
_DEFINITION = {"type": "object", "properties": {"service_code": {"type": "string"}, "attributes": {"type": "array"}}}
_REQUESTS = _list_of({"service_request_id": {"type": "string"}, "status": {"enum": ["open", "closed"]}})
_CREATED = _list_of({"service_request_id": {"type": "string"}})
_UPDATES = _list_of({"update_id": {"type": "string"}, "service_request_id": {"type": "string"},
                     "status": {"type": "string"}, "external_status_code": {"type": "string"},
                     "description": {"type": "string"}, "updated_datetime": {"type": "string"},
                     "media_url": {"type": ["string", "null"]}})
_UPDATE_CREATED = _list_of({"update_id": {"type": "string"}})
_LIST_PARAMS = [
    {"name": "service_request_id", "in": "query", "schema": {"type": "string"},
     "description": "comma-separated ids (up to 1000); overrides the other filters"},
    {"name": "service_code", "in": "query", "schema": {"type": "string"}, "description": "comma-separated codes"},
    {"name": "status", "in": "query", "schema": {"type": "string"}, "description": "open, closed or open,closed"},
    {"name": "start_date", "in": "query", "schema": {"type": "string", "format": "date-time"}},
    {"name": "end_date", "in": "query", "schema": {"type": "string", "format": "date-time"}},
    {"name": "jurisdiction_id", "in": "query", "schema": {"type": "string"}},
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1},
     "description": "the page of 1000 (a full page's answer names the next in Link and X-Next-Page)"}]


def _answer(fmt: str, root: str, item: str, entries: list[dict[str, Any]] | dict[str, Any], status: int = 200,
            headers: dict[str, str] | None = None) -> Response:
    listed = entries if isinstance(entries, list) else [entries]
    if fmt == "xml":
        return Response(open311.to_xml(root, item, listed), status_code=status, media_type="application/xml",
                        headers=headers)
    return JSONResponse(entries, status_code=status, headers=headers)


def _error(fmt: str, exc: Open311Error) -> Response:
    return _answer(fmt, "errors", "error", open311.errors_view(exc.status, exc.description), exc.status)


def build_open311_router(runtime: ServiceRuntime, intake: Intake, store: MediaStore, decoding: asyncio.Semaphore,
                         services: dict[str, Service], clock: Clock, jurisdiction: str = "") -> APIRouter:
    """The /open311/v2 routes over the street's categories and intake's cases (`jurisdiction`: the street's code,
    the only jurisdiction_id answered); intake's commands; its photo store, and the bound on photos decoded at once."""
    router = APIRouter(prefix="/open311/v2", tags=["Open311 GeoReport v2"])

    def checked(fmt: str, params: dict[str, str]) -> str:
        """The answer's format, and the jurisdiction asked (Open311Error if either is not this street's)."""
        if fmt not in FORMATS:
            raise Open311Error(404, f"format {fmt!r} is not served: use .json or .xml (仅支持json或xml)")
        asked = (params.get("jurisdiction_id") or "").strip()
        if asked and jurisdiction and asked != jurisdiction:
            raise Open311Error(404, f"jurisdiction_id {asked!r} is not served here; this is {jurisdiction!r} "
                                    f"(本接口只受理{jurisdiction}的请求)")
        return fmt

    @router.get("/services.{fmt}", responses=_answers(_SERVICE, 404))
    async def list_services(request: Request, fmt: str) -> Response:
        """Every service (case category) of this street."""
        try:
            checked(fmt, _query(request))
        except Open311Error as exc:
            return _error(fmt, exc)
        return _answer(fmt, "services", "service", open311.services_list(services.values()))

    @router.get("/services/{code}.{fmt}", responses=_answers(_DEFINITION, 404))
    async def service_definition(request: Request, fmt: str, code: str) -> Response:
        """One service's definition: the extra questions (attributes) its category asks, if any."""
        try:
            checked(fmt, _query(request))
            if code not in services:
                raise Open311Error(404, f"no service {code[:20]!r} (see services.{fmt}) (无此服务类别)")
        except Open311Error as exc:
            return _error(fmt, exc)
        definition = open311.service_definition(services[code])
        if fmt == "xml":
            return Response(open311.definition_xml(definition), media_type="application/xml")
        return JSONResponse(definition)

    @router.post("/requests.{fmt}", status_code=201, responses=_answers(_CREATED, 400, 403, 404),
                 openapi_extra=_form_body(("service_code", "lat", "long", "address_string", "description",
                                           "first_name", "last_name", "phone", "email", "media_url",
                                           "attribute[danger]"),
                                          ["service_code", "description"]))
    async def post_request(request: Request, fmt: str) -> Response:
        """Report a problem: the spec's form fields, or multipart with photos in `media` (api_key = a wangge
        credential); answers the case number."""
        try:
            checked(fmt, _query(request))
            form, files = await _form(request)
            checked(fmt, form)
            client = await _poster(runtime, request, form)
            photos = await _photos(runtime, store, decoding, files, client)
            fields = open311.report_fields(form, services, photos)
            report = ReportSubmitted.model_validate({
                **fields, "source": "web", "external_id": f"open311-{uuid.uuid4()}", "coordinator": None,
                "observed_at": clock.now().isoformat()})
            missing = await media_sql.not_stored(runtime.pool, report.media)
            if missing:
                raise Open311Error(400, media_sql.not_stored_reason(missing[0]))
            case, _ = await intake.submit(report, via="http", client=client.sender_scope)
        except Open311Error as exc:
            return _error(fmt, exc)
        except (ValidationError, ReportRejected) as exc:
            return _error(fmt, Open311Error(400, str(exc).splitlines()[0][:300]))
        return _answer(fmt, "service_requests", "request", open311.created_view(case.case_no), 201)

    @router.get("/requests.{fmt}", responses=_answers(_REQUESTS, 400, 404), openapi_extra={"parameters": _LIST_PARAMS})
    async def get_requests(request: Request, fmt: str) -> Response:
        """Requests, newest first, 1000 a page (the last 90 days unless dates or ids are given)."""
        try:
            params = _query(request)
            checked(fmt, params)
            ids = _listed(params, "service_request_id")
            page = _page(params)
            if ids:
                # The spec: ids override every other filter.
                codes, closed, start, end = None, None, None, None
            else:
                codes = _listed(params, "service_code")
                closed = _status_filter(params)
                start, end = _window(params, default=timedelta(days=90), at=clock.now())
        except Open311Error as exc:
            return _error(fmt, exc)
        rows = await repository.public_requests(
            runtime.pool, case_nos=ids, categories=codes, start=start, end=end, closed=closed,
            limit=PAGE + 1, offset=(page - 1) * PAGE)
        photos = public_photos(runtime.settings)
        return _answer(fmt, "service_requests", "request",
                       [open311.request_view(r, services, photos) for r in rows[:PAGE]],
                       headers=_next(request, page, len(rows) > PAGE))

    @router.get("/requests/{request_id}.{fmt}", responses=_answers(_REQUESTS, 404))
    async def get_request(request: Request, fmt: str, request_id: str) -> Response:
        """One request by its id (the case number)."""
        try:
            checked(fmt, _query(request))
        except Open311Error as exc:
            return _error(fmt, exc)
        rows = await repository.public_requests(runtime.pool, case_nos=[request_id[:50]],
                                                categories=None, start=None, end=None, closed=None, limit=1)
        if not rows:
            return _error(fmt, Open311Error(404, f"no request {request_id[:50]!r} (无此服务请求)"))
        photos = public_photos(runtime.settings)
        return _answer(fmt, "service_requests", "request", [open311.request_view(rows[0], services, photos)])

    @router.get("/servicerequestupdates.{fmt}", responses=_answers(_UPDATES, 400, 404),
                openapi_extra={"parameters": [p for p in _LIST_PARAMS if p["name"] in (
                    "service_request_id", "start_date", "end_date", "jurisdiction_id", "page")]})
    async def get_updates(request: Request, fmt: str) -> Response:
        """Every public step of the cases in the window (start_date ≤ updated_datetime < end_date; the last 24
        hours unless given), 1000 a page: the latest 1000 in the order they happened, `page=2` the 1000 before them: state changes, the owner's progress, result or
        explanation, residents' comments. `status` is FixMyStreet's (OPEN, ACTION_SCHEDULED, IN_PROGRESS,
        INVESTIGATING, FIXED, NO_FURTHER_ACTION, NOT_COUNCILS_RESPONSIBILITY, DUPLICATE), external_status_code
        wangge's own state."""
        try:
            params = _query(request)
            checked(fmt, params)
            ids = _listed(params, "service_request_id")
            page = _page(params)
            start, end = _window(params, default=None if ids else timedelta(hours=24), at=clock.now())
        except Open311Error as exc:
            return _error(fmt, exc)
        rows = await repository.case_updates(runtime.pool, case_nos=ids, start=start, end=end,
                                             limit=PAGE + 1, offset=(page - 1) * PAGE)
        photos = public_photos(runtime.settings)
        # The latest page first: FixMyStreet's fetch-comments reads one answer for the last two hours, and oldest
        # first it would read the same oldest page for ever once the window held more. Within the page, in the order
        # the steps happened: it takes a state only from an update no older than the last it took (a reply to the
        # resident that follows the close would otherwise make it ignore the close).
        latest = rows[:PAGE][::-1]
        return _answer(fmt, "service_request_updates", "request_update",
                       [open311.update_view(r, photos) for r in latest], headers=_next(request, page, len(rows) > PAGE))

    @router.get("/media/{public_id}.jpg", response_class=Response, responses={
        200: {"description": "the photo's thumbnail (JPEG, 320 px), public", "content": {"image/jpeg": {
            "schema": {"type": "string", "format": "binary"}}}},
        404: {"description": "no public photo by this id (the spec's error list)",
              "content": {"application/json": {"schema": _ERROR}}}})
    async def public_photo(request: Request, public_id: str) -> Response:
        """A photo of a public step of a case, as the media_url of Open311 answers names it, to anyone: its
        thumbnail, without a credential (FixMyStreet's add_media fetches it so)."""
        media_id = await media_sql.public_photo(runtime.pool, public_id) \
            if open311.PUBLIC_PHOTO_ID.fullmatch(public_id) else None
        data = await asyncio.to_thread(store.get, media_id, "thumbnail") if media_id else None
        if data is None:
            return _error("json", Open311Error(404, "no such public photo (照片不存在或未公开)"))
        # Public and never changing (content-addressed): any cache may keep it.
        return Response(data, media_type="image/jpeg", headers={
            "Cache-Control": "public, max-age=86400", "ETag": f'"{public_id}"', "X-Content-Type-Options": "nosniff",
            "Content-Disposition": "inline"})

    @router.post("/servicerequestupdates.{fmt}", status_code=201, responses=_answers(_UPDATE_CREATED, 400, 403, 404),
                 openapi_extra=_form_body(("service_request_id", "update_id", "description", "updated_datetime",
                                           "status", "media_url", "first_name", "last_name", "email", "phone"),
                                          ["service_request_id"]))
    async def post_update(request: Request, fmt: str) -> Response:
        """A resident's comment through a client: a note on the case that reaches its holder, once per the client's
        update_id (the same update_id again answers the same update)."""
        try:
            checked(fmt, _query(request))
            form, files = await _form(request)
            checked(fmt, form)
            client = await _poster(runtime, request, form)
            case_no = (form.get("service_request_id") or "").strip()
            if not case_no:
                raise Open311Error(400, "service_request_id is required (请填写服务请求编号)")
            photos = await _photos(runtime, store, decoding, files, client)
            linked = (form.get("media_url") or "").strip()
            if linked and not linked.lower().startswith(("http://", "https://")):
                raise Open311Error(400, "media_url must be an absolute http(s) URL (照片地址须为完整的http(s)地址)")
            theirs = (form.get("update_id") or "").strip()[:200] or str(uuid.uuid4())
            # FixMyStreet sends status=REOPEN (extended statuses, mark_reopen) when its user says a fixed report
            # is not fixed: on a closed case that is the resident's "not solved" (supervision reopens it within
            # the survey window). Any other status is the client's view of the request, not an instruction.
            reopen = (form.get("status") or "").strip().upper() == "REOPEN"
            # The client's resident's name, phone and e-mail are not kept: the comment is what reaches the owner.
            comment = await add_comment(runtime, case_no=case_no[:50],
                                        text=form.get("description") or "", media=([linked] if linked else []) + photos,
                                        # once per the client's update_id on this request (the same id on another
                                        # request, a client whose ids restarted, is another comment), within the
                                        # client's own credential: never its name, which another client may share
                                        # (intake 009 moved the keys stored under the name)
                                        channel="open311",
                                        sender_key=f"open311:{client.sender_scope}:{case_no[:50]}:{theirs}",
                                        # the key before it named the request: a comment posted then, retried now
                                        legacy_key=f"open311:{client.sender_scope}:{theirs}", reopen=reopen,
                                        clock=clock)
        except Open311Error as exc:
            return _error(fmt, exc)
        except CommentRefused as exc:
            return _error(fmt, Open311Error(exc.status, exc.reason))
        return _answer(fmt, "service_request_updates", "request_update", open311.comment_created_view(comment.comment_id),
                       200 if comment.duplicate else 201)

    return router


def _form_body(fields: tuple[str, ...], required: list[str]) -> dict[str, Any]:
    properties = {key: {"type": "string", "maxLength": 2000} for key in ("api_key", "jurisdiction_id", *fields)}
    multipart = {**properties, "media": {"type": "array", "items": {"type": "string", "format": "binary"},
                                         "description": f"photos (JPEG, PNG, WebP or HEIC; up to {MAX_PHOTOS}); "
                                                        "also taken as photo1, photo2, … (FixMyStreet's uploads)"}}
    return {"requestBody": {"required": True, "content": {
        "application/x-www-form-urlencoded": {"schema": {"type": "object", "required": required, "properties": properties}},
        "multipart/form-data": {"schema": {"type": "object", "required": required, "properties": multipart}}}}}


def _query(request: Request) -> dict[str, str]:
    """The query's parameters (the last of a repeated one); a query that is not UTF-8 is refused."""
    raw = request.scope.get("query_string", b"")
    try:
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise Open311Error(400, "the query is not UTF-8 (查询参数须为UTF-8编码)") from None
    return dict(pairs)


async def _form(request: Request) -> tuple[dict[str, str], list[UploadFile]]:
    """The posted fields (url-encoded, or multipart with photo files in `media`), or Open311Error."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind == "multipart/form-data":
        try:
            parsed = await request.form(max_files=MAX_PHOTOS, max_fields=100)
        except MultiPartException as bad:
            raise Open311Error(400, f"the multipart body does not parse: {bad.message} (表单格式错误)") from None
        except UnicodeDecodeError:
            raise Open311Error(400, "the form is not UTF-8 (表单须为 UTF-8 编码)") from None
        fields: dict[str, str] = {}
        files: list[UploadFile] = []
        for key, value in parsed.multi_items():
            if isinstance(value, UploadFile):
                # `media` (and media[]), or FixMyStreet's photo1, photo2, … (its upload_files / always_upload_photos
                # send each photo as photoN). Other files (FixMyStreet's file_<key> enquiry documents) are not photos.
                if key in ("media", "media[]", "photo") or PHOTO_FIELD.fullmatch(key):
                    files.append(value)
            else:
                fields[key] = value
        return fields, files
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise Open311Error(400, "the form is not UTF-8: send application/x-www-form-urlencoded in UTF-8 "
                                "(表单须为 UTF-8 编码)") from None
    return dict(parse_qsl(text, keep_blank_values=True)), []


async def _poster(runtime: ServiceRuntime, request: Request, form: dict[str, str]) -> Client:
    """The credential posting (api_key, or a Bearer header): a reporting role, or Open311Error 403."""
    bearer = request.headers.get("authorization", "")
    token = form.get("api_key") or _query(request).get("api_key") or (
        bearer[7:] if bearer.lower().startswith("bearer ") else "")
    client = await client_by_token(runtime.pool, token, production=runtime.settings.profile == "production") \
        if token else None
    if client is None or client.role not in ROLES:
        raise Open311Error(403, "api_key missing, unknown, or not allowed to post (api_key无效或无权提交)")
    return client


async def _photos(runtime: ServiceRuntime, store: MediaStore, decoding: asyncio.Semaphore, files: list[UploadFile],
                  client: Client) -> list[str]:
    """Photos posted as multipart `media`, stored like POST /api/v1/media's: their /media/<id>."""
    urls = []
    settings = runtime.settings
    for part in files:
        data = await part.read(settings.media_max_bytes + 1)
        if not data:
            continue
        if len(data) > settings.media_max_bytes:
            raise Open311Error(400, f"a photo is larger than {settings.media_max_bytes // (1024 * 1024)} MB "
                                    f"(照片不能超过{settings.media_max_bytes // (1024 * 1024)}MB)")
        try:
            photo = await store_photo(runtime, store, decoding, data, part.content_type or "", client)
        except PhotoRefused as no:
            raise Open311Error(400, no.reason) from None
        urls.append(media_url(photo.media_id))
    return urls


def _listed(params: dict[str, str], key: str) -> list[str] | None:
    """A comma-separated parameter (a,b,c), or None when absent."""
    raw = params.get(key)
    if raw is None or not raw.strip():
        return None
    items = list(dict.fromkeys(item.strip() for item in raw.split(",") if item.strip()))
    if len(items) > MAX_IDS or any(len(item) > 50 for item in items):
        raise Open311Error(400, f"{key}: at most {MAX_IDS} values of at most 50 characters "
                                f"({key}最多{MAX_IDS}个，每个不超过50个字符)")
    return items


def _status_filter(params: dict[str, str]) -> bool | None:
    """status=open, closed or open,closed: True for closed only, False for open only, None for both."""
    statuses = set(_listed(params, "status") or [])
    unknown = statuses - {"open", "closed"}
    if unknown:
        raise Open311Error(400, f"status must be open, closed or both comma-separated, not {sorted(unknown)[0]!r} "
                                "(status只能是open或closed)")
    return None if len(statuses) != 1 else statuses == {"closed"}


def _window(params: dict[str, str], *, default: timedelta | None,
            at: datetime) -> tuple[datetime | None, datetime | None]:
    """start_date and end_date (W3C date-times; street time without an offset), or the default span back from
    end_date (or `at`, the service's moment)."""
    start, end = _date(params, "start_date"), _date(params, "end_date")
    if start and end and start >= end:
        raise Open311Error(400, "start_date must be before end_date (开始时间须早于结束时间)")
    if start is None and default is not None:
        start = (end or at) - default
    return start, end


def _date(params: dict[str, str], key: str) -> datetime | None:
    raw = (params.get(key) or "").strip()
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+") if "T" in raw else raw)
    except ValueError:
        raise Open311Error(400, f"{key} must be a W3C date-time such as 2026-12-06T09:30:00+08:00 "
                                f"({key}须为ISO 8601时间)") from None
    return _aware(moment)


def _page(params: dict[str, str]) -> int:
    raw = (params.get("page") or "1").strip()
    if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        raise Open311Error(400, "page must be a whole number from 1 (page须为正整数)")
    return int(raw)


def _next(request: Request, page: int, more: bool) -> dict[str, str] | None:
    """A full page names the next: Link rel=next and X-Next-Page."""
    if not more:
        return None
    query = {**_query(request), "page": str(page + 1)}
    return {"Link": f'<{request.url.path}?{urlencode(query)}>; rel="next"', "X-Next-Page": str(page + 1)}


def _aware(moment: datetime) -> datetime:
    """A date-time as the street reads it: without an offset it is street time."""
    return moment if moment.tzinfo else moment.replace(tzinfo=street_zone())

"""Open311 GeoReport v2 (https://wiki.open311.org/GeoReport_v2), so that existing civic-report clients
work unchanged: GET services, GET services/{code}, POST requests, GET requests, GET requests/{id}, each
as .json or .xml. Reads are public; posting needs a credential as the spec's api_key (or a Bearer header)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from services.intake.adapters import repository
from services.intake.domain import open311
from services.intake.domain.open311 import Open311Error, Service
from services.intake.handlers import Intake, ReportRejected
from shared.auth import client_by_token
from shared.clock import now, street_zone
from shared.contracts.reports import ReportSubmitted

Format = Literal["json", "xml"]
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


def _answer(fmt: str, root: str, item: str, entries: list[dict[str, Any]] | dict[str, Any], status: int = 200) -> Response:
    listed = entries if isinstance(entries, list) else [entries]
    if fmt == "xml":
        return Response(open311.to_xml(root, item, listed), status_code=status, media_type="application/xml")
    return JSONResponse(entries, status_code=status)


def _error(fmt: str, exc: Open311Error) -> Response:
    return _answer(fmt, "errors", "error", open311.errors_view(exc.status, exc.description), exc.status)


def build_open311_router(services: dict[str, Service]) -> APIRouter:
    """The /open311/v2 routes over the street's categories and intake's cases."""
    router = APIRouter(prefix="/open311/v2", tags=["Open311 GeoReport v2"])

    @router.get("/services.{fmt}", responses=_answers(_SERVICE))
    async def list_services(fmt: Format) -> Response:
        """Every service (case category) of this street."""
        return _answer(fmt, "services", "service", open311.services_list(services.values()))

    @router.get("/services/{code}.{fmt}", responses=_answers(_DEFINITION, 404))
    async def service_definition(fmt: Format, code: str = Path(min_length=1, max_length=20)) -> Response:
        """One service's definition (no attributes beyond the standard fields)."""
        if code not in services:
            return _error(fmt, Open311Error(404, f"no service {code!r} (see services.{fmt})"))
        return _answer(fmt, "service_definition", "service_definition", open311.service_definition(services[code]))

    @router.post("/requests.{fmt}", status_code=201, responses=_answers(_CREATED, 400, 403),
                 openapi_extra={"requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
                     "schema": {"type": "object", "required": ["service_code", "description"], "properties": {
                         key: {"type": "string", "maxLength": 2000} for key in (
                             "api_key", "service_code", "lat", "long", "address_string", "description",
                             "first_name", "last_name", "phone", "email", "media_url")}}}}}})
    async def post_request(request: Request, fmt: Format) -> Response:
        """Report a problem: the spec's form fields (api_key = a wangge credential); answers the case number."""
        try:
            text = (await request.body()).decode("utf-8")
        except UnicodeDecodeError:
            return _error(fmt, Open311Error(400, "the form is not UTF-8: send application/x-www-form-urlencoded "
                                                 "in UTF-8 (表单须为 UTF-8 编码)"))
        form = {key: values[-1] for key, values in parse_qs(text, keep_blank_values=True).items()}
        bearer = request.headers.get("authorization", "")
        token = form.get("api_key") or (bearer[7:] if bearer.lower().startswith("bearer ") else "")
        runtime = request.app.state.runtime
        client = await client_by_token(runtime.pool, token, production=runtime.settings.profile == "production") \
            if token else None
        if client is None or client.role not in ROLES:
            return _error(fmt, Open311Error(403, "api_key missing, unknown, or not allowed to post requests"))
        try:
            fields = open311.report_fields(form, services)
            report = ReportSubmitted.model_validate({
                **fields, "source": "web", "external_id": f"open311-{uuid.uuid4()}", "coordinator": None,
                "observed_at": now().isoformat()})
            intake: Intake = request.app.state.intake
            case, _ = await intake.submit(report, via="http", client=client.actor)
        except Open311Error as exc:
            return _error(fmt, exc)
        except (ValidationError, ReportRejected) as exc:
            return _error(fmt, Open311Error(400, str(exc).splitlines()[0][:300]))
        return _answer(fmt, "service_requests", "request", open311.created_view(case.case_no), 201)

    @router.get("/requests.{fmt}", responses=_answers(_REQUESTS, 400))
    async def get_requests(
        request: Request, fmt: Format,
        service_request_id: str | None = Query(default=None, max_length=1000, description="comma-separated ids"),
        service_code: str | None = Query(default=None, max_length=20),
        start_date: datetime | None = Query(default=None), end_date: datetime | None = Query(default=None),
        status: Literal["open", "closed"] | None = None,
    ) -> Response:
        """Requests, newest first (at most 1000; the last 90 days unless dates are given)."""
        if start_date and end_date and start_date >= end_date:
            return _error(fmt, Open311Error(400, "start_date must be before end_date"))
        ids = [i.strip() for i in service_request_id.split(",") if i.strip()] if service_request_id else None
        start = _aware(start_date) if start_date else (None if ids else now() - timedelta(days=90))
        rows = await repository.public_requests(
            request.app.state.runtime.pool, case_nos=ids, category=service_code, start=start,
            end=_aware(end_date) if end_date else None, closed=None if status is None else status == "closed",
            limit=1000)
        return _answer(fmt, "service_requests", "request", [open311.request_view(r, services) for r in rows])

    @router.get("/requests/{request_id}.{fmt}", responses=_answers(_REQUESTS, 404))
    async def get_request(request: Request, fmt: Format,
                          request_id: str = Path(min_length=1, max_length=50)) -> Response:
        """One request by its id (the case number)."""
        rows = await repository.public_requests(request.app.state.runtime.pool, case_nos=[request_id], category=None,
                                                start=None, end=None, closed=None, limit=1)
        if not rows:
            return _error(fmt, Open311Error(404, f"no request {request_id!r}"))
        return _answer(fmt, "service_requests", "request", [open311.request_view(rows[0], services)])

    return router


def _aware(moment: datetime) -> datetime:
    """A date-time as the street reads it: without an offset it is street time."""
    return moment if moment.tzinfo else moment.replace(tzinfo=street_zone())


"""Integrators' webhook endpoints through the admin API (role admin): add one (its secret shown once), list
them, disable one. Replies of the cases they follow are POSTed to them signed (services/notify/domain/webhooks.py)."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from shared.auth import Client, require
from shared.clock import to_street_time
from shared.runtime import ServiceRuntime

from services.notify.adapters import webhooks as store
from services.notify.domain.webhooks import new_secret, url_problem

admins = require("admin")


class EndpointBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="who it is, e.g. 市城管平台")
    url: str = Field(min_length=8, max_length=500, description="where replies are POSTed (https in production)")
    sources: list[Literal["terminal", "hotline", "web", "camera"]] = Field(
        default_factory=list, max_length=4, description="the cases it follows by how they came in; [] = every case")


class EndpointView(BaseModel):
    id: str
    name: str
    url: str
    sources: list[str]
    enabled: bool
    created_by: str
    created_at: datetime


class NewEndpoint(EndpointView):
    secret: str = Field(description="the HMAC-SHA256 key of its signatures: shown this once, keep it")


class EndpointList(BaseModel):
    endpoints: list[EndpointView]


def _view(row) -> dict:
    return {"id": str(row["id"]), "name": row["name"], "url": row["url"], "sources": list(row["sources"]),
            "enabled": row["enabled"], "created_by": row["created_by"], "created_at": to_street_time(row["created_at"])}


def build_webhooks_router(runtime: ServiceRuntime) -> APIRouter:
    """The webhook endpoints' admin API, on notify's runtime."""
    router = APIRouter(prefix="/api/v1/admin/webhooks", tags=["webhooks"])

    @router.post("", status_code=201, response_model=NewEndpoint,
                 responses={409: {"description": "the name is taken"}, 422: {"description": "the URL cannot be used"}})
    async def add_endpoint(body: EndpointBody, client: Client = Depends(admins)) -> NewEndpoint:
        """Configure an integrator's endpoint; the answer carries its signing secret, never shown again."""
        problem = url_problem(body.url, production=runtime.settings.profile == "production")
        if problem:
            raise HTTPException(422, f"url: {problem}")
        secret = new_secret()
        async with runtime.pool.acquire() as conn:
            row = await store.add_endpoint(conn, name=body.name, url=body.url, secret=secret, sources=body.sources,
                                           created_by=client.actor)
        if row is None:
            raise HTTPException(409, f"an endpoint named {body.name!r} exists already (名称已存在)")
        return NewEndpoint(**_view(row), secret=secret)

    @router.get("", response_model=EndpointList)
    async def list_endpoints(_: Client = Depends(admins)) -> EndpointList:
        """The configured endpoints (secrets never shown)."""
        async with runtime.pool.acquire() as conn:
            return EndpointList(endpoints=[EndpointView(**_view(r)) for r in await store.list_endpoints(conn)])

    @router.delete("/{endpoint_id}", status_code=204, responses={404: {"description": "no such endpoint"}})
    async def disable_endpoint(endpoint_id: uuid.UUID, _: Client = Depends(admins)) -> None:
        """Stop sending to an endpoint: its waiting deliveries fail as refused (the row stays, for the record)."""
        async with runtime.pool.acquire() as conn:
            if not await store.disable_endpoint(conn, endpoint_id):
                raise HTTPException(404, "no such webhook endpoint (没有该接收地址)")

    return router

"""The street's reply templates through the admin API (role admin): list, preview with sample data, change
with a history. A text that is broken (Jinja2 syntax, a variable not declared for it, over the SMS budget)
is refused with 422 and every reason; the default files stay the fallback."""
from __future__ import annotations

from datetime import datetime
from typing import Mapping

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from shared.auth import Client, require
from shared.clock import to_street_time
from shared.runtime import ServiceRuntime

from services.notify.adapters import templates as store
from services.notify.domain import templates as rules
from services.notify.domain.replies import ReplyTemplates

admins = require("admin")
NAME = Path(max_length=50, pattern=r"^[a-z_]+$", description="the template, e.g. survey")


class VariableView(BaseModel):
    name: str
    description: str
    sample: str


class TemplateView(BaseModel):
    """A template as in force: the edited text, or the default file's."""

    name: str
    source: str
    default_source: str
    edited: bool
    version: int = Field(description="0: the default file, never edited")
    updated_by: str | None
    updated_at: datetime | None
    variables: list[VariableView]
    preview: str = Field(description="the text with the sample values")


class TemplateList(BaseModel):
    templates: list[TemplateView]
    max_chars: int = Field(description=f"a message with the sample values must fit {rules.MAX_SEGMENTS} SMS segments")


class TemplateChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=rules.MAX_SOURCE_CHARS, description="the new Jinja2 text")
    note: str | None = Field(default=None, max_length=500, description="why it changed (kept in the history)")


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(default=None, max_length=rules.MAX_SOURCE_CHARS,
                               description="a text to try (default: the one in force)")
    values: dict[str, str] | None = Field(default=None, description="values over the samples")


class Preview(BaseModel):
    name: str
    text: str
    chars: int
    segments: int
    within_budget: bool


class HistoryEntry(BaseModel):
    version: int
    previous_source: str
    source: str
    changed_by: str
    changed_at: datetime
    note: str | None


class History(BaseModel):
    name: str
    history: list[HistoryEntry]


def _refused(exc: rules.TemplateRefused) -> HTTPException:
    return HTTPException(422, "; ".join(exc.reasons))


def _known(defaults: Mapping[str, str], name: str) -> str:
    if name not in defaults or name not in rules.ALL:
        raise HTTPException(404, f"no template named {name!r} (没有该模板)")
    return defaults[name]


def _view(name: str, default: str, row) -> TemplateView:
    source = row["source"] if row else default
    return TemplateView(
        name=name, source=source, default_source=default, edited=row is not None,
        version=row["version"] if row else 0, updated_by=row["updated_by"] if row else None,
        updated_at=to_street_time(row["updated_at"]) if row else None,
        variables=[VariableView(name=v.name, description=v.description, sample=v.sample)
                   for v in rules.variables_of(name)],
        preview=rules.render_preview(name, source),
    )


def build_templates_router(runtime: ServiceRuntime, templates: ReplyTemplates) -> APIRouter:
    """The reply templates' admin API, on notify's runtime and its built-in defaults."""
    router = APIRouter(prefix="/api/v1/admin/templates", tags=["templates"])

    @router.get("", response_model=TemplateList)
    async def list_templates(_: Client = Depends(admins)) -> TemplateList:
        """Every reply template in force, its variables and a preview with sample values."""
        async with runtime.pool.acquire() as conn:
            edited = await store.edited(conn)
        defaults = templates.defaults
        return TemplateList(templates=[_view(n, defaults[n], edited.get(n)) for n in rules.ALL if n in defaults],
                            max_chars=rules.MAX_CHARS)

    @router.post("/{name}/preview", response_model=Preview, responses={404: {"description": "no such template"},
                                                                      422: {"description": "the text is broken"}})
    async def preview_template(body: PreviewRequest, name: str = NAME,
                               _: Client = Depends(admins)) -> Preview:
        """The message a text (or the one in force) gives with the sample values (or those given)."""
        default = _known(templates.defaults, name)
        source = body.source
        if source is None:
            async with runtime.pool.acquire() as conn:
                row = (await store.edited(conn)).get(name)
            source = row["source"] if row else default
        try:
            text = rules.render_preview(name, source, body.values)
        except rules.TemplateRefused as exc:
            raise _refused(exc) from None
        return Preview(name=name, text=text, chars=len(text), segments=rules.segments(text),
                       within_budget=len(text) <= rules.MAX_CHARS)

    @router.put("/{name}", response_model=TemplateView, responses={404: {"description": "no such template"},
                                                                  422: {"description": "the text is broken"}})
    async def change_template(body: TemplateChange, name: str = NAME,
                              client: Client = Depends(admins)) -> TemplateView:
        """Replace a template's text: checked first (422 with every reason), kept with who, when and the text before."""
        default = _known(templates.defaults, name)
        try:
            rules.check(name, body.source)
        except rules.TemplateRefused as exc:
            raise _refused(exc) from None
        async with runtime.uow() as uow:
            # One change at a time per template, so that each history row holds the text it really replaced.
            await uow.conn.execute("SELECT pg_advisory_xact_lock(hashtext('reply_template:' || $1))", name)
            before = (await store.edited(uow.conn)).get(name)
            await store.save(uow.conn, name=name, source=body.source, previous=before["source"] if before else default,
                             changed_by=client.actor, note=body.note)
            row = (await store.edited(uow.conn))[name]
            await uow.commit()
        return _view(name, default, row)

    @router.get("/{name}/history", response_model=History, responses={404: {"description": "no such template"}})
    async def template_history(name: str = NAME, _: Client = Depends(admins)) -> History:
        """Who changed the template, when, and the text before; newest first."""
        _known(templates.defaults, name)
        async with runtime.pool.acquire() as conn:
            rows = await store.history(conn, name)
        return History(name=name, history=[HistoryEntry(**{**r, "changed_at": to_street_time(r["changed_at"])})
                                           for r in rows])

    return router

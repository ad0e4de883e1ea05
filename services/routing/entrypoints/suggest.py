"""GET /api/v1/categories/suggest: the categories a held report's description points to (operators classifying a held
report; grid coordinators choosing the category of a report on their phone)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from services.routing import views
from services.routing.domain.suggestion import Candidate, suggest
from shared.auth import Client, require
from shared.runtime import ServiceRuntime


class SuggestedCategory(BaseModel):
    code: str
    name: str
    group: str
    score: float = Field(description="share of the category name's two-character words found in the text, "
                                     "plus a quarter of its group's (0–1.25)")
    matched: list[str] = Field(description="the words of the name or group found in the text")
    why: str = Field(description="the reason, in Chinese, for the operator")


class Suggestions(BaseModel):
    suggestions: list[SuggestedCategory] = Field(description="best first; empty when no category's words appear")


def build_suggest_router(runtime: ServiceRuntime) -> APIRouter:
    """The suggestion route, over the categories routing holds."""
    router = APIRouter(prefix="/api/v1", tags=["routing"])

    @router.get("/categories/suggest", response_model=Suggestions)
    async def suggested(
        text: str = Query(min_length=1, max_length=2000, description="the report's description"),
        limit: int = Query(default=3, ge=1, le=10),
        _: Client = Depends(require("operator", "admin", "terminal", "resident")),
    ) -> dict[str, Any]:
        """建议类别: the categories whose own name words appear in the description, with the words that matched."""
        candidates = [Candidate(c["code"], c["name"], c["group"]) for c in await views.categories(runtime.pool)]
        found = suggest(text, candidates, limit)
        return {"suggestions": [{**s.__dict__, "matched": list(s.matched), "why": s.why} for s in found]}

    return router

"""GET /api/v1/reports/weekly.pdf: the Monday meeting's list (周例会) of one community as a PDF to print.

The figures are those of GET /api/v1/reports/weekly: this route asks that route's own handler, so the
two can never disagree.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response
from fastapi.routing import APIRoute

from services.supervision.adapters.pdf import weekly_pdf
from services.supervision.domain.policy import StreetPolicy
from shared.auth import Client, require
from shared.http import refusal

WEEKLY_PATH = "/api/v1/reports/weekly"


def weekly_handler(stats_router: APIRouter) -> Any:
    """The handler of GET /api/v1/reports/weekly among the statistics routes."""
    for route in stats_router.routes:
        if isinstance(route, APIRoute) and route.path == WEEKLY_PATH and "GET" in route.methods:
            return route.endpoint
    raise LookupError(f"no GET {WEEKLY_PATH} among the statistics routes")


def build_weekly_pdf_router(policy: StreetPolicy, stats_router: APIRouter) -> APIRouter:
    """The PDF route, printing what the statistics router's weekly handler answers."""
    router = APIRouter(prefix="/api/v1", tags=["statistics"])
    weekly_json = weekly_handler(stats_router)

    @router.get("/reports/weekly.pdf", response_class=Response, responses={
        200: {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
              "description": "the report as an A4 PDF (a download)"},
        422: refusal("not a community of this street, or not an ISO week"),
        503: refusal("this machine cannot print PDF (pango or WeasyPrint missing)")})
    async def weekly_as_pdf(
        community: str = Query(min_length=1, max_length=50, json_schema_extra={"enum": sorted(policy.communities)}),
        week: str = Query(pattern=r"^20\d\d-W(0[1-9]|[1-4]\d|5[0-3])$", description="ISO week, e.g. 2026-W48"),
        client: Client = Depends(require("operator", "admin", "owner")),
    ) -> Response:
        """周例会通报 (PDF): each unit grid of the community with its coordinator and the week's case numbers. Also for
        the community's own staff, for their community only (the weekly handler's rule)."""
        weekly = await weekly_json(community=community, week=week, format="json", client=client)
        try:
            pdf = await weekly_pdf(weekly)
        except (OSError, ImportError) as exc:  # pango or WeasyPrint missing on this machine
            raise HTTPException(503, f"PDF printing is not installed here (deploy/local/pdf.sh install): {exc}") from None
        return Response(pdf, media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="weekly-{community}-{week}.pdf"'})

    return router

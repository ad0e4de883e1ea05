"""The street's figures over HTTP: GET /api/v1/stats and the reports (weekly list, ranking, assessment, year).
Operators and admins; JSON, or CSV (UTF-8 with a BOM, a header row) with format=csv. Definitions:
docs/STATISTICS.md."""
from __future__ import annotations

import asyncio
from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, create_model

from services.supervision.adapters import stats as sql
from services.supervision.domain import stats
from services.supervision.domain.policy import StreetPolicy
from services.supervision.domain.stats import StatsNames
from services.supervision.figures import StreetFigures
from shared.auth import Client, require
from shared.clock import Clock
from shared.http import refusal
from shared.runtime import ServiceRuntime

operator = require("operator", "admin", "screen")  # the figures are read-only: the wall's screen credential too
# The Monday list, ranking and assessment: also a community's own staff (an owner whose code is a community),
# for their community only (community_scope below).
reader = require("operator", "admin", "owner", "screen")
Format = Literal["json", "csv"]
By = Literal[stats.BY]  # type: ignore[valid-type]
CSV_TYPE = "text/csv; charset=utf-8"

# ---- documented answers ---------------------------------------------------------------------------

_FIGURES: dict[str, Any] = {name: (int, Field(description=f"count: docs/STATISTICS.md#{name}")) for name in stats.COUNTS}
_FIGURES.update({name: (float | None, Field(description=f"{num} / {' + '.join(den)}; 0–1, 4 places; null if 0"))
                 for name, (num, den) in stats.RATES.items()})
Figures = create_model("Figures", **_FIGURES)  # type: ignore[call-overload]


class StatsRow(Figures):  # type: ignore[misc, valid-type]
    key: str | None = Field(description="owner code, community or unit grid code, coordinator id or category code; "
                                        "null: the cases without one (not dispatched, not located, not a coordinator's)")
    name: str


class StatsAnswer(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_: date = Field(alias="from")
    to: date
    by: By
    as_of: str = Field(description="when overdue_now was counted (ISO 8601, street time)")
    rows: list[StatsRow]
    total: Figures  # type: ignore[valid-type]


class WeeklyGrid(BaseModel):
    unit_grid: str
    name: str
    coordinator: str | None
    coordinator_name: str | None
    reported: int
    open: int
    late: int
    reported_cases: list[str]
    open_cases: list[str]
    late_cases: list[str]


class WeeklyAnswer(BaseModel):
    community: str
    name: str
    week: str
    from_: date = Field(alias="from")
    to: date
    as_of: str
    rows: list[WeeklyGrid]
    total: dict[str, int]


class RankRow(BaseModel):
    rank: int
    key: str
    name: str
    on_time_rate: float | None
    satisfaction_rate: float | None
    due: int
    due_closed_on_time: int
    surveyed: int
    satisfied: int
    received: int
    closed: int


class RankingAnswer(BaseModel):
    month: str
    communities: list[RankRow]
    departments: list[RankRow]


class AssessmentRow(BaseModel):
    worker_id: str
    name: str
    unit_grid: str | None
    unit_grid_name: str | None
    community: str | None
    community_name: str | None
    reports: int
    valid_reports: int
    fixed_on_the_spot: int
    grid_due: int
    grid_due_closed_on_time: int
    grid_on_time_rate: float | None


class AssessmentAnswer(BaseModel):
    month: str
    rows: list[AssessmentRow]


class YearRow(BaseModel):
    key: str | None
    name: str
    received: int
    closed: int
    share: float | None = Field(description="closed / received")


class YearAnswer(BaseModel):
    year: int
    received: int
    closed: int
    share: float | None
    by_category: list[YearRow]
    by_community: list[YearRow]


def _documented(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    return {200: {"model": model, "content": {"text/csv": {"schema": {"type": "string"}}},
                  "description": "the figures (JSON), or with format=csv a CSV download (UTF-8 with BOM)"},
            422: refusal("a parameter does not fit (a date, week or month that does not exist, from after to, "
                         "an unknown by or community)")}


def _csv(content: bytes, filename: str) -> Response:
    return Response(content, media_type=CSV_TYPE, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def build_stats_router(runtime: ServiceRuntime, policy: StreetPolicy, names: StatsNames,
                       street_figures: StreetFigures, clock: Clock) -> APIRouter:
    """GET /api/v1/stats and /api/v1/reports/*, from supervision's own case_events and read model (kept days summed).
    `clock`: the service's, as `street_figures` has it: "open" and "late" are of its moment."""
    router = APIRouter(prefix="/api/v1", tags=["statistics"])
    zone = policy.calendar.zone
    grid_community = stats.grid_communities(policy.communities)

    def community_scope(client: Client, asked: str | None) -> str | None:
        """None: the whole street (operators); else the one community the caller may read, 403 for any other."""
        if client.role != "owner":
            return asked
        own = client.owner_code
        if own not in policy.communities:
            raise HTTPException(403, f"owner {own!r} is not a community: only a community's own staff read its "
                                     "reports (仅社区工作人员可查看本社区报表)")
        if asked is not None and asked != own:
            raise HTTPException(403, f"community {own} may read its own reports only, not {asked}'s "
                                     "(仅可查看本社区报表)")
        return own

    def period_of(build: Any, *args: Any) -> stats.Period:
        try:
            return build(*args)
        except stats.PeriodError as exc:
            raise HTTPException(422, str(exc)) from None

    async def counted(period: stats.Period, by: str) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
        grouped, total, at = await street_figures.counted(period, by)
        return stats.named_rows(by, grouped, names), stats.with_rates(total), at.astimezone(zone).isoformat()

    @router.get("/stats", responses=_documented(StatsAnswer))
    async def figures(
        from_: date = Query(alias="from", description="first day (YYYY-MM-DD, street time)"),
        to: date = Query(description="last day, inclusive"),
        by: By = Query(default="owner"),
        format: Format = Query(default="json"),
        _: Client = Depends(operator),
    ) -> Any:
        """The street's figures for the days from–to, per owner, community, unit grid, coordinator or category,
        with the street's total (definitions: docs/STATISTICS.md)."""
        period = period_of(stats.Period, from_, to, zone)
        rows, total, as_of = await counted(period, by)
        if format == "csv":
            return _csv(stats.stats_csv(rows, total), f"stats-{from_}-{to}-{by}.csv")
        return {"from": from_, "to": to, "by": by, "as_of": as_of, "rows": rows, "total": total}

    @router.get("/reports/weekly", responses=_documented(WeeklyAnswer))
    async def weekly(
        community: str = Query(min_length=1, max_length=50, json_schema_extra={"enum": sorted(policy.communities)}),
        week: str = Query(pattern=r"^20\d\d-W(0[1-9]|[1-4]\d|5[0-3])$", description="ISO week, e.g. 2026-W48 (Monday to Sunday)"),
        format: Format = Query(default="json"),
        client: Client = Depends(reader),
    ) -> Any:
        """The Monday meeting's list: each unit grid of the community with its coordinator, the cases reported in
        the week, open now and late (open past the deadline now, or closed in the week not on time)."""
        community_scope(client, community)
        grids = list(policy.unit_grids_of(community))
        if not grids:
            raise HTTPException(422, f"no community {community!r} in this street")
        period = period_of(stats.week_period, week, zone)
        at = clock.now()
        cases = await sql.weekly(runtime.pool, grids, period, at)
        rows = []
        for grid in grids:
            mine = [c for c in cases if c["unit_grid"] == grid]
            coordinator = names.grid_coordinator.get(grid)
            lists = {kind: [c["case_no"] or c["case_id"] for c in mine if c[kind]] for kind in ("reported", "open", "late")}
            rows.append({"unit_grid": grid, "name": names.unit_grids.get(grid, grid), "coordinator": coordinator,
                         "coordinator_name": names.coordinators.get(coordinator) if coordinator else None,
                         **{kind: len(found) for kind, found in lists.items()},
                         **{f"{kind}_cases": found for kind, found in lists.items()}})
        total = {kind: sum(r[kind] for r in rows) for kind in ("reported", "open", "late")}
        if format == "csv":
            header = ("unit_grid", "name", "coordinator", "coordinator_name", "reported", "open", "late",
                      "reported_cases", "open_cases", "late_cases")
            return _csv(stats.to_csv(header, [[r[h] for h in header] for r in rows]), f"weekly-{community}-{week}.csv")
        return {"community": community, "name": names.communities.get(community, community), "week": week,
                "from": period.first, "to": period.last, "as_of": at.astimezone(zone).isoformat(), "rows": rows,
                "total": total}

    rank_fields = ("rank", "key", "name", "on_time_rate", "satisfaction_rate", "due", "due_closed_on_time", "surveyed",
                   "satisfied", "received", "closed")

    @router.get("/reports/ranking", responses=_documented(RankingAnswer))
    async def ranking(
        month: str = Query(pattern=r"^20\d\d-(0[1-9]|1[0-2])$", description="YYYY-MM (2000–2099)"),
        format: Format = Query(default="json"),
        client: Client = Depends(reader),
    ) -> Any:
        """Communities (cases in their unit grids) and departments (cases they held) ranked by on-time rate, then
        satisfaction rate, for one month."""
        period = period_of(stats.month_period, month, zone)
        communities, _total, _ = await counted(period, "community")
        owners, _total, _ = await counted(period, "owner")

        def every(by: str, rows: list[dict[str, Any]], keys: Any) -> list[dict[str, Any]]:
            """A row for each of the street's keys, with nothing counted where nothing happened."""
            found = {r["key"]: r for r in rows}
            listed = [found.get(k) or {"key": k, "name": names.name(by, k), **stats.with_rates({})} for k in sorted(keys)]
            return [{f: r[f] for f in rank_fields} for r in stats.ranked(listed)]

        answer = {"month": month, "communities": every("community", communities, names.communities),
                  "departments": every("owner", owners, names.departments)}
        own = community_scope(client, None)
        if own is not None:  # a community's staff: its own row, ranked among all, and no one else's figures
            answer = {"month": month, "communities": [r for r in answer["communities"] if r["key"] == own],
                      "departments": []}
        if format == "csv":
            lines = [[group, *(r[f] for f in rank_fields)] for group in ("communities", "departments")
                     for r in answer[group]]
            return _csv(stats.to_csv(("group", *rank_fields), lines), f"ranking-{month}.csv")
        return answer

    @router.get("/reports/assessment", responses=_documented(AssessmentAnswer))
    async def assessment(
        month: str = Query(pattern=r"^20\d\d-(0[1-9]|1[0-2])$", description="YYYY-MM (2000–2099)"),
        community: str | None = Query(default=None, min_length=1, max_length=50,
                                      description="only the coordinators of this community (its own staff: always theirs)"),
        format: Format = Query(default="json"),
        client: Client = Depends(reader),
    ) -> Any:
        """考核 of every coordinator for one month: reports, valid reports (立案), fixed on the spot, and the share of
        the cases due in their unit grid closed on time."""
        scope = community_scope(client, community)
        if scope is not None and scope not in policy.communities:
            raise HTTPException(422, f"no community {scope!r} in this street")
        period = period_of(stats.month_period, month, zone)
        by_coordinator, _total, _ = await counted(period, "coordinator")
        by_grid, _total, _ = await counted(period, "unit_grid")
        mine = {r["key"]: r for r in by_coordinator}
        grids = {r["key"]: r for r in by_grid}
        rows = []
        for worker, person in sorted(names.coordinators.items()):
            figures_ = mine.get(worker, stats.with_rates({}))
            grid = names.coordinator_grid.get(worker)
            in_grid = grids.get(grid, stats.with_rates({}))
            community = grid_community.get(grid) if grid else None
            if scope is not None and community != scope:
                continue
            rows.append({"worker_id": worker, "name": person, "unit_grid": grid,
                         "unit_grid_name": names.unit_grids.get(grid) if grid else None,
                         "community": community, "community_name": names.communities.get(community) if community else None,
                         "reports": figures_["coordinator_reports"], "valid_reports": figures_["accepted"],
                         "fixed_on_the_spot": figures_["fixed_on_the_spot"], "grid_due": in_grid["due"],
                         "grid_due_closed_on_time": in_grid["due_closed_on_time"],
                         "grid_on_time_rate": in_grid["on_time_rate"]})
        if format == "csv":
            header = tuple(AssessmentRow.model_fields)
            return _csv(stats.to_csv(header, [[r[h] for h in header] for r in rows]), f"assessment-{month}.csv")
        return {"month": month, "rows": rows}

    @router.get("/reports/year", responses=_documented(YearAnswer))
    async def year(
        year: int = Query(ge=stats.FIRST_DAY.year, le=stats.LAST_DAY.year),
        format: Format = Query(default="json"),
        _: Client = Depends(operator),
    ) -> Any:
        """The year: cases received, closed and the share closed, for the street, by category and by community."""
        period = period_of(stats.year_period, year, zone)
        (categories, total, _), (communities, _total, _) = await asyncio.gather(
            counted(period, "category"), counted(period, "community"))

        def line(row: dict[str, Any]) -> dict[str, Any]:
            return {"key": row["key"], "name": row["name"], "received": row["received"], "closed": row["closed"],
                    "share": stats.rate(row["closed"], row["received"])}

        answer = {"year": year, "received": total["received"], "closed": total["closed"],
                  "share": stats.rate(total["closed"], total["received"]),
                  "by_category": [line(r) for r in categories], "by_community": [line(r) for r in communities]}
        if format == "csv":
            lines = [[by, r["key"], r["name"], r["received"], r["closed"], r["share"]]
                     for by, found in (("category", answer["by_category"]), ("community", answer["by_community"]))
                     for r in found]
            lines.append(["total", "合计", "全街道", answer["received"], answer["closed"], answer["share"]])
            return _csv(stats.to_csv(("by", "key", "name", "received", "closed", "share"), lines), f"year-{year}.csv")
        return answer

    return router

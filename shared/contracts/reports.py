"""Inbound reports on `wangge.reports` (and the same body over HTTP)."""
from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from shared.contracts.common import Coordinator, Location, MediaList, Reporter, ReportSource
from shared.contracts.registry import EventModel, event


class ResolvedOnTheSpot(BaseModel):
    """自行处置: the coordinator fixed the problem on the spot; what was done, with before/after photos."""

    model_config = ConfigDict(extra="forbid")

    result: str = Field(min_length=1, max_length=1000, description="what the coordinator did (处置结果)")
    media: MediaList = Field(default_factory=list, description="photos, as in `media`")

    @model_validator(mode="after")
    def _says_what(self) -> "ResolvedOnTheSpot":
        if not self.result.strip():
            raise ValueError("result: say what was done on the spot (处置结果), not only blanks")
        return self


@event
class ReportSubmitted(EventModel):
    """A terminal, the hotline bridge, the web or a camera reports a problem."""

    TYPE = "report.submitted"
    VERSION = 1

    source: ReportSource
    external_id: str = Field(min_length=1, max_length=200, description="the source's own id")
    category: str | None = Field(default=None, max_length=20)
    description: str = Field(min_length=1, max_length=2000)
    location: Location | None = None
    address: str | None = Field(default=None, max_length=300)
    reporter: Reporter | None = None
    coordinator: Coordinator | None = None
    media: MediaList = Field(default_factory=list)
    observed_at: AwareDatetime
    resolved_on_the_spot: ResolvedOnTheSpot | None = Field(
        default=None, description="自行处置: a problem the coordinator fixed on the spot (terminal reports only): "
                                  "recorded as a case and closed at once, without dispatch")

    @model_validator(mode="after")
    def _where(self) -> "ReportSubmitted":
        if self.location is None and not (self.address and self.address.strip()):
            raise ValueError("either location or address is required")
        if self.resolved_on_the_spot is not None and self.source != "terminal":
            raise ValueError("resolved_on_the_spot: only a coordinator's terminal report may be fixed on the spot "
                             "(自行处置仅限网格员上报)")
        return self

"""Inbound reports on `wangge.reports` (and the same body over HTTP)."""
from __future__ import annotations

from pydantic import AwareDatetime, Field, model_validator

from shared.contracts.common import Coordinator, Location, MediaList, Reporter, ReportSource
from shared.contracts.registry import EventModel, event


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

    @model_validator(mode="after")
    def _where(self) -> "ReportSubmitted":
        if self.location is None and not (self.address and self.address.strip()):
            raise ValueError("either location or address is required")
        return self

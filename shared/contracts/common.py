"""Value types that several events share."""
from __future__ import annotations

from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

ReportSource = Literal["terminal", "hotline", "web", "camera"]
Priority = Literal["low", "normal", "high", "urgent"]
LimitUnit = Literal["work_hours", "work_days", "hours"]


class Location(BaseModel):
    """A WGS84 point."""

    model_config = ConfigDict(extra="forbid")

    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)


class Reporter(BaseModel):
    """The resident to answer."""

    name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=30)


class Coordinator(BaseModel):
    """The grid coordinator and the terminal a report came from."""

    worker_id: str = Field(min_length=1, max_length=50)
    device_id: str = Field(min_length=1, max_length=50)


class TimeLimit(BaseModel):
    """A handling limit as the category defines it."""

    value: float = Field(gt=0)
    unit: LimitUnit


MediaUrl = AnyHttpUrl


class OnTheSpot(BaseModel):
    """自行处置 as case events carry it: what the coordinator did and the photos (URLs as given)."""

    result: str = Field(min_length=1, max_length=1000, description="what the coordinator did on the spot")
    media: list[str] = Field(default_factory=list, max_length=20, description="photos (before/after), URLs")

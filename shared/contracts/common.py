"""Value types that several events share."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, AnyHttpUrl, BaseModel, ConfigDict, Field, TypeAdapter, WithJsonSchema

from shared.media import MEDIA_PATH

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
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$",
                              description="an e-mail to answer at (Open311's `email`); masked (z***@example.cn) "
                                          "wherever the phone is, in clear only on wangge.contacts")


class Coordinator(BaseModel):
    """The grid coordinator and the terminal a report came from."""

    worker_id: str = Field(min_length=1, max_length=50)
    device_id: str = Field(min_length=1, max_length=50)


class TimeLimit(BaseModel):
    """A handling limit as the category defines it."""

    value: float = Field(gt=0)
    unit: LimitUnit


# The most photos one message carries (a report, a progress note, a resolution, a check): a phone's picker
# offers nine at a time, and more is not a report but an album.
MAX_MEDIA_PER_MESSAGE = 9

_ABSOLUTE = TypeAdapter(AnyHttpUrl)
MAX_URL_CHARS = 2083


def _media_url(value: str) -> str:
    """A photo's URL: `/media/<id>` (stored by wangge: POST /api/v1/media) or an absolute http(s) URL (hosted
    by the terminal's own system), as text. Anything else (a relative path, javascript:, a file name) is refused."""
    if MEDIA_PATH.fullmatch(value):
        return value
    if len(value) > MAX_URL_CHARS:
        raise ValueError(f"a photo URL is at most {MAX_URL_CHARS} characters (照片地址过长)")
    if value.startswith("/"):
        raise ValueError("a relative photo URL must be /media/<id> as POST /api/v1/media answered it "
                         "(照片地址无效：应为上传后返回的 /media/<id>)")
    try:
        return str(_ABSOLUTE.validate_python(value))
    except ValueError:
        raise ValueError("a photo URL is /media/<id> (uploaded to wangge) or an absolute http(s) URL "
                         "(照片地址无效)") from None


MediaUrl = Annotated[str, AfterValidator(_media_url), WithJsonSchema({
    "anyOf": [{"type": "string", "pattern": MEDIA_PATH.pattern},
              {"type": "string", "format": "uri", "pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#]+([/?#]\S*)?$",
               "minLength": 1, "maxLength": MAX_URL_CHARS}],
    "description": "a photo: /media/<id> as POST /api/v1/media answered, or an absolute http(s) URL"})]
MediaList = Annotated[list[MediaUrl], Field(max_length=MAX_MEDIA_PER_MESSAGE,
                                            description=f"photos, at most {MAX_MEDIA_PER_MESSAGE}")]


class OnTheSpot(BaseModel):
    """自行处置 as case events carry it: what the coordinator did and the photos (URLs as given)."""

    result: str = Field(min_length=1, max_length=1000, description="what the coordinator did on the spot")
    media: list[str] = Field(default_factory=list, max_length=20, description="photos (before/after), URLs")

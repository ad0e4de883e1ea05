"""The one envelope every message on every wangge topic travels in."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from shared.clock import now, to_street_time


class InvalidMessage(ValueError):
    """A message that cannot be read as the contract says; carries a reason for the rejected topic."""

    def __init__(self, reason: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.errors = errors or []


def describe_validation_error(exc: ValidationError) -> list[dict[str, Any]]:
    """pydantic's errors reduced to what a sender needs: where, and what is wrong."""
    return [
        {"field": ".".join(str(p) for p in err["loc"]), "error": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


class Envelope(BaseModel):
    """{id, type, version, case_id, occurred_at, source, data}: the contract's envelope."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=100, description="unique per event; consumers de-duplicate on it")
    type: str = Field(pattern=r"^[a-z0-9-]+(\.[a-z0-9-]+)+$", description="dotted, past tense")
    version: int = Field(ge=1, description="schema version of this type")
    case_id: str | None = Field(default=None, max_length=100)
    occurred_at: AwareDatetime
    source: str = Field(min_length=1, max_length=100)
    data: dict[str, Any]

    @classmethod
    def new(
        cls,
        type: str,
        version: int,
        data: dict[str, Any],
        *,
        source: str,
        case_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> "Envelope":
        """A fresh envelope with a new id, stamped now in the street's zone unless told otherwise."""
        return cls(
            id=str(uuid.uuid4()),
            type=type,
            version=version,
            case_id=case_id,
            occurred_at=to_street_time(occurred_at) if occurred_at else now(),
            source=source,
            data=data,
        )

    def to_json(self) -> bytes:
        """UTF-8 JSON, times as ISO 8601 with their offset."""
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> "Envelope":
        """Parse and validate one message; raises InvalidMessage with the reason."""
        if raw is None:
            raise InvalidMessage("empty message (no value)")
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidMessage(f"not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise InvalidMessage("not a JSON object: the envelope must be one object")
        try:
            return cls.model_validate(obj)
        except ValidationError as exc:
            errors = describe_validation_error(exc)
            raise InvalidMessage("envelope does not fit the contract: " + _summary(errors), errors) from None


def _summary(errors: list[dict[str, Any]]) -> str:
    return "; ".join(f"{e['field'] or '(root)'}: {e['error']}" for e in errors[:5])

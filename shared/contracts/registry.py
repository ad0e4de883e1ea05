"""Which event types exist, in which versions, and how old versions are upcast."""
from __future__ import annotations

from typing import Any, Callable, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.contracts.envelope import Envelope, InvalidMessage, _summary, describe_validation_error

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class EventModel(BaseModel):
    """The `data` of one event type at one version. Subclasses set TYPE and VERSION."""

    model_config = ConfigDict(extra="allow")  # the contract says: more fields may be added

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1

    def envelope(self, *, source: str, case_id: str | None = None, **kwargs: Any) -> Envelope:
        """This event wrapped in a fresh envelope."""
        data = self.model_dump(mode="json", exclude_none=False)
        return Envelope.new(self.TYPE, self.VERSION, data, source=source, case_id=case_id, **kwargs)


M = TypeVar("M", bound=type[EventModel])

_models: dict[str, type[EventModel]] = {}
# (type, from_version) -> function turning data of from_version into data of from_version + 1
_upcasters: dict[tuple[str, int], Upcaster] = {}


def event(cls: M) -> M:
    """Class decorator: register the current version of an event type."""
    _models[cls.TYPE] = cls
    return cls


def upcaster(type_: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Decorator: register how data of `from_version` becomes `from_version + 1`."""

    def register(fn: Upcaster) -> Upcaster:
        _upcasters[(type_, from_version)] = fn
        return fn

    return register


def registered_types() -> dict[str, type[EventModel]]:
    """Every known event type and its current model."""
    return dict(_models)


def parse_event(envelope: Envelope) -> EventModel:
    """The typed data of an envelope, upcast to the current version; InvalidMessage if it does not fit."""
    model = _models.get(envelope.type)
    if model is None:
        raise InvalidMessage(f"unknown event type {envelope.type!r}")
    if envelope.version > model.VERSION:
        raise InvalidMessage(
            f"{envelope.type} version {envelope.version} is newer than this reader knows ({model.VERSION})"
        )
    data = dict(envelope.data)
    for version in range(envelope.version, model.VERSION):
        step = _upcasters.get((envelope.type, version))
        if step is None:
            raise InvalidMessage(f"no upcaster for {envelope.type} version {version}")
        data = step(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = describe_validation_error(exc)
        raise InvalidMessage(f"{envelope.type} data does not fit the contract: " + _summary(errors), errors) from None

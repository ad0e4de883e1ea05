"""What we say to a resident, and to which number: pure functions, no I/O."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import jinja2

from shared.contracts.replies import ReplyKind
from shared.logs import mask_phone

MOBILE = re.compile(r"1[3-9]\d{9}")
# What people type around a number: spaces, dashes, brackets, and the country code.
_NOISE = re.compile(r"[\s\-()（）]")
_COUNTRY_CODE = re.compile(r"^(?:\+86|0086|86)(?=1\d{10}$)")


class TemplateMissing(LookupError):
    """No template is configured for a kind of reply."""


class ReplyTemplates:
    """The reply texts (kind → Jinja2 source), compiled once; a missing value is an error, not a blank."""

    def __init__(self, sources: dict[str, str]):
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
        self._templates = {kind: env.from_string(source) for kind, source in sources.items()}

    def render(self, kind: str, **values: object) -> str:
        """The text of one reply, surrounding whitespace removed."""
        template = self._templates.get(kind)
        if template is None:
            raise TemplateMissing(f"no template for {kind!r} replies")
        return template.render(**values).strip()


@dataclass(frozen=True)
class DeliveryPlan:
    """A reply decided on: what to send, to whom, and whether it can go out by SMS at all."""

    kind: ReplyKind
    channel: str
    to: str
    text: str
    state: Literal["pending", "held"]
    detail: str | None = None


def sms_number(phone: str | None) -> str | None:
    """The mainland mobile number in what a resident gave (spaces, dashes, +86 removed), or None."""
    if not phone:
        return None
    compact = _COUNTRY_CODE.sub("", _NOISE.sub("", phone))
    return compact if MOBILE.fullmatch(compact) else None


def mask_address(address: str) -> str:
    """An address fit for logs and views: 13900001001 → 139****1001; anything else keeps only its ends."""
    masked = mask_phone(address)
    if masked != address:
        return masked
    compact = _NOISE.sub("", address)
    return f"{compact[:3]}****{compact[-4:]}" if len(compact) >= 8 else "****"


def plan_acknowledgement(templates: ReplyTemplates, *, case_no: str, phone: str, signature: str) -> DeliveryPlan:
    """受理回执: tell the resident the case was accepted, with its number; held if the phone takes no SMS."""
    text = templates.render("acknowledgement", case_no=case_no, signature=signature)
    number = sms_number(phone)
    if number is None:
        # A landline or a mistyped number: SMS cannot reach it. The reply is held, and reply.issued
        # says so, so that the hotline bridge can call the resident back instead.
        return DeliveryPlan("acknowledgement", "sms", phone, text, "held", "not a mobile number: SMS cannot reach it")
    return DeliveryPlan("acknowledgement", "sms", number, text, "pending")

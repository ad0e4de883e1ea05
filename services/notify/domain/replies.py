"""What we say to a resident, and to which number: pure functions, no I/O."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from shared.clock import to_street_time
from shared.contracts.replies import ReplyKind
from shared.personal_data import sms_number


class TemplateMissing(LookupError):
    """No template is configured for a kind of reply."""


class ReplyTemplates:
    """The reply texts (template name → Jinja2 source), compiled once; a missing value is an error, not a blank.
    `use` puts the street's edited texts (notify's reply_templates) over the default files."""

    def __init__(self, sources: dict[str, str]):
        # Sandboxed: edited texts come from the street's admin API and must not reach Python objects.
        self._env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
        self.defaults = dict(sources)
        self._templates = {kind: self._env.from_string(source) for kind, source in sources.items()}

    def use(self, edited: dict[str, str]) -> None:
        """The defaults with these edited texts over them (each was checked before it was saved)."""
        sources = {**self.defaults, **edited}
        self._templates = {kind: self._env.from_string(source) for kind, source in sources.items()}

    def render(self, name: str, **values: object) -> str:
        """The text of one reply, surrounding whitespace removed."""
        template = self._templates.get(name)
        if template is None:
            raise TemplateMissing(f"no template {name!r} for replies")
        return template.render(**values).strip()


@dataclass(frozen=True)
class DeliveryPlan:
    """A reply decided on: what to send, to whom, and whether it can go out by SMS at all."""

    kind: ReplyKind
    channel: str
    to: str
    text: str
    state: Literal["pending", "held", "awaiting_contact"]
    detail: str | None = None
    template: str = ""


def street_moment(moment: datetime) -> str:
    """A time as residents read it, in the street's zone: 11月30日17:30."""
    local = to_street_time(moment)
    return f"{local.month}月{local.day}日{local:%H:%M}"


def brief(text: str, limit: int = 200) -> str:
    """An owner's text cut to fit an SMS (the full text stays in the case's history)."""
    # Trailing punctuation is dropped: the templates end the sentence themselves.
    text = " ".join(text.split()).rstrip("。.！!；;，,")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Deliveries to the street's own staff, not replies to a resident: never on wangge.replies (the hotline bridge
# calls residents back from it) nor on a resident's page.
STAFF_KINDS = frozenset({"escalation"})

NOT_MOBILE = "not a mobile number: SMS cannot reach it"
AWAITING_CONTACT = "waiting for the resident's contact to arrive (待接收居民联系方式)"
CONTACT_ERASED = ("the resident's contact was erased after the survey window (居民联系方式已按期删除): "
                  "no one to send it to")


def route(phone: str) -> tuple[str, Literal["pending", "held"], str | None]:
    """Where a reply to this phone goes: (address, state, why held). A landline or a mistyped number
    cannot take SMS: the reply is held, and reply.issued says so, so that the hotline bridge can call
    the resident back instead."""
    number = sms_number(phone)
    if number is None:
        return phone, "held", NOT_MOBILE
    return number, "pending", None


# Reports that came in online (the resident page, Open311 clients, which arrive as `web`): the resident is at a
# screen and gave an address to be answered at.
ONLINE_SOURCES = frozenset({"web"})


def choose_route(*, phone: str, email: str | None = None,
                 source: str | None = None) -> tuple[str, str, Literal["pending", "held"], str | None]:
    """The channel a reply to this resident goes on: (channel, address, state, why held). The rule:
    1. came in online (ONLINE_SOURCES) and gave an e-mail → e-mail;
    2. gave a mobile number → SMS (a hotline or a coordinator's report: the phone is how they asked to hear);
    3. gave an e-mail and no mobile (a landline, nothing) → e-mail;
    4. gave a landline only → held, and reply.issued says so: the hotline bridge calls them back;
    Integrators' webhooks are not a resident's channel: they get a copy beside it (webhooks_for)."""
    mobile = sms_number(phone) if phone and phone.strip() else None
    if email and (source in ONLINE_SOURCES or mobile is None):
        return "email", email, "pending", None
    to, state, detail = route(phone)
    return "sms", to, state, detail


def plan_reply(templates: ReplyTemplates, kind: ReplyKind, template: str, *, phone: str, signature: str,
               email: str | None = None, source: str | None = None, **values: object) -> DeliveryPlan:
    """One reply from a template to one resident on their channel (choose_route); held (with the reason) if
    neither SMS nor e-mail can reach them."""
    text = templates.render(template, signature=signature, **values)
    channel, to, state, detail = choose_route(phone=phone, email=email, source=source)
    return DeliveryPlan(kind, channel, to, text, state, detail, template)


def plan_without_contact(templates: ReplyTemplates, kind: ReplyKind, template: str, *, erased: bool,
                         signature: str, **values: object) -> DeliveryPlan:
    """A reply for a reporter whose contact notify does not hold: awaiting it (it is on its way on
    wangge.contacts, which has no order with wangge.cases) or held for good (erased)."""
    text = templates.render(template, signature=signature, **values)
    if erased:
        return DeliveryPlan(kind, "sms", "", text, "held", CONTACT_ERASED, template)
    return DeliveryPlan(kind, "sms", "", text, "awaiting_contact", AWAITING_CONTACT, template)


def erased_fields(*, name: bool, phone: bool, follower_phones: bool, delivery_addresses: bool) -> list[str]:
    """What an erasure removed, in the contract's words (case.personal-data-erased `fields`)."""
    found = {"name": name, "phone": phone, "follower_phones": follower_phones,
             "delivery_addresses": delivery_addresses}
    return [field for field, present in found.items() if present]


def plan_acknowledgement(templates: ReplyTemplates, *, case_no: str, phone: str, signature: str,
                         email: str | None = None, source: str | None = None) -> DeliveryPlan:
    """受理回执: tell the resident the case was accepted, with its number; held if nothing can reach them."""
    return plan_reply(templates, "acknowledgement", "acknowledgement", phone=phone, signature=signature,
                      case_no=case_no, email=email, source=source)

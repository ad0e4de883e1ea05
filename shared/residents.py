"""Residents on the web (/my/): their opaque ids, one-time codes and signed survey links. Pure, no I/O.

A resident is a phone that a one-time SMS code proved, or an e-mail address a code sent by e-mail proved (notify,
which alone holds phones and addresses: DESIGN "Personal data").
Their session is a credential of the registry like people's, but its name is an opaque id — an HMAC of the phone
under the street's resident key — so the phone never travels on wangge.credentials, and intake can check that the
phone a resident's report gives is the one proven (the same HMAC) without ever being told it.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timezone

from shared.personal_data import sms_number

RESIDENT_PREFIX = "r-"
CODE_DIGITS = 6


def resident_id(key: bytes, phone_norm: str) -> str:
    """The opaque id of a (normalised) phone: the same phone, the same id; nothing of the phone in it."""
    digest = hmac.new(key, b"resident:" + phone_norm.encode(), hashlib.sha256).hexdigest()
    return RESIDENT_PREFIX + digest[:32]


def is_resident_of(key: bytes, rid: str, phone_norm: str) -> bool:
    """Whether `phone_norm` is the phone behind the resident id `rid` (constant time)."""
    return bool(phone_norm) and hmac.compare_digest(resident_id(key, phone_norm), rid)


# A resident may prove an e-mail address instead (one who reported through Open311 with only an e-mail): the same
# kind of id, of the address as a lookup compares it. "email:" keeps an address from ever meeting a phone's id.
EMAIL_PREFIX = "email:"


def normalise_email(email: str | None) -> str | None:
    """An e-mail address as look-ups compare it (trimmed, lower case), or None if it is not one."""
    address = (email or "").strip().lower()
    local, at, domain = address.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in address) or len(address) > 254:
        return None
    return address


def email_resident_id(key: bytes, email_norm: str) -> str:
    """The opaque id of a (normalised) e-mail address."""
    return resident_id(key, EMAIL_PREFIX + email_norm)


def resident_ids_of(key: bytes, *, phone: str | None, email: str | None) -> list[str]:
    """The ids of the residents who may follow a case reported with this phone and e-mail: the mobile's (only a
    mobile can receive a code) and the address's. Empty when neither was given."""
    ids = []
    if (number := sms_number(phone)) is not None:
        ids.append(resident_id(key, number))
    if (address := normalise_email(email)) is not None:
        ids.append(email_resident_id(key, address))
    return ids


def new_code() -> str:
    """A 6-digit one-time code, from the system's secure random source."""
    return f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"


def code_hash(key: bytes, phone_norm: str, code: str) -> str:
    """How a code is stored: keyed to the phone, so a leaked table gives neither the codes nor a dictionary."""
    return hmac.new(key, f"code:{phone_norm}:{code}".encode(), hashlib.sha256).hexdigest()


# ---- signed survey links: /my/?s=<token> ---------------------------------------------------------------------
# token = base64url("<survey_id>.<closes_at epoch seconds>") + "." + base64url(HMAC-SHA256 of that, 16 bytes).
# The link names the survey and when it stops being valid; the signature makes both unforgeable. One answer per
# survey is notify's rule (surveys.answered_at), whatever the link.

class BadLink(ValueError):
    """The survey link is malformed, forged or expired; the message says which (for the resident)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, b"survey-link:" + payload, hashlib.sha256).digest()[:16]


def survey_token(key: bytes, survey_id: str, closes_at: datetime) -> str:
    """The signed token of a survey's link, valid until the survey window closes."""
    payload = f"{survey_id}.{int(closes_at.timestamp())}".encode()
    return f"{_b64(payload)}.{_b64(_mac(key, payload))}"


def read_survey_token(key: bytes, token: str, at: datetime) -> str:
    """The survey id a token names, if it is genuine and not expired at `at`; BadLink otherwise."""
    try:
        body, _, sig = token.partition(".")
        payload, mac = _unb64(body), _unb64(sig)
        survey_id, _, closes = payload.decode("ascii").rpartition(".")
        closes_at = datetime.fromtimestamp(int(closes), tz=timezone.utc)
    except (ValueError, UnicodeDecodeError):
        raise BadLink("this survey link is not valid (评价链接无效)") from None
    if not survey_id or not hmac.compare_digest(mac, _mac(key, payload)):
        raise BadLink("this survey link is not valid (评价链接无效)")
    if at >= closes_at:
        raise BadLink("this survey link has expired: the survey window is closed (评价链接已过期)")
    return survey_id

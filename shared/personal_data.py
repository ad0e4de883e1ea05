"""Residents' personal data (个人信息保护法, DESIGN "Personal data"): how a phone number is recognised, compared
and masked, and how a name is masked. The one place for these rules: logs, views, events and notify's
deliveries all mask and compare through it. Pure, no I/O.

- mask_personal(): every phone number in free text (descriptions, reasons, comments, log lines).
- mask_phone_number(), mask_name(): the fields that hold a resident's contact.
- mask_address(): a delivery's address (the phone SMS went to) fit for views and logs.
- mask_message(): a whole message as parsed JSON (or its text): a rejection's original.
- normalise_phone(): a phone as look-ups compare it; sms_number(): the mainland mobile in it, if any.
"""
from __future__ import annotations

import re

# Full-width digits and signs (１３９…, ＋８６) are read as their ASCII forms before matching.
_FULL_WIDTH = str.maketrans({**{chr(0xFF10 + i): str(i) for i in range(10)}, "＋": "+"})
_FULL_WIDTH_DIGIT = re.compile("[\uff10-\uff19＋]")  # what _FULL_WIDTH reads (a search, not a loop per character)
# Mainland mobile numbers: 11 digits starting 1[3-9], optionally +86/0086/86 before, and a space or
# dash anywhere between the digits ("139 0000 1001", "139-0000-1001", "1390000 1001").
_SEP = "[ \\-\u2010-\u2015\uff0d\u3000]"  # a space or a dash, ASCII or full-width
_MOBILE_IN_TEXT = re.compile(
    rf"(?<!\d)((?:(?:\+|00)?86{_SEP}?)?)(1[3-9]\d)((?:{_SEP}?\d){{4}})((?:{_SEP}?\d){{4}})(?!\d)")
# Landlines with an area code, the code optionally in brackets: 0632-3311234, (010)62345678, 010 6234 5678.
_LANDLINE = re.compile(rf"(?<!\d)([(（]?0\d{{2,3}}[)）]?{_SEP}?)(\d{{3,4}}){_SEP}?(\d{{4}})(?!\d)")
_DIGIT_RUN = re.compile(rf"\d(?:{_SEP}?\d){{4,}}")  # five or more digits in a row: too much of a number left
_COUNTRY_CODE = re.compile(rf"^(?:\+|00)?86{_SEP}?(?=1[3-9])")
# A mainland mobile number once spaces, dashes, brackets and the country code are gone.
MOBILE = re.compile(r"1[3-9]\d{9}")
# What people type around a number: spaces, dashes (ASCII or full-width) and brackets.
_NOISE = re.compile(r"[\s\-\u2010-\u2015\uff0d()（）]")
_COMPACT_COUNTRY_CODE = re.compile(r"^(?:\+|00)?86(?=1[3-9]\d{9}$)")
NO_NAME = "(未留名)"


def normalise_phone(phone: str | None) -> str:
    """A phone as look-ups compare it: full-width digits read as ASCII; spaces, dashes, brackets and the +86
    of a mobile removed ("+86 139-0000-1001" → "13900001001", "010-6234 5678" → "01062345678")."""
    compact = _NOISE.sub("", (phone or "").translate(_FULL_WIDTH))
    return _COMPACT_COUNTRY_CODE.sub("", compact)


def sms_number(phone: str | None) -> str | None:
    """The mainland mobile number in what a resident gave (normalised), or None: SMS reaches nothing else."""
    number = normalise_phone(phone)
    return number if MOBILE.fullmatch(number) else None


def mask_personal(text: str) -> str:
    """Mask every phone number in free text: 13900001001 → 139****1001, 0632-3311234 → 0632-****1234."""
    if not text:
        return text
    if _FULL_WIDTH_DIGIT.search(text):
        text = text.translate(_FULL_WIDTH)
    text = _MOBILE_IN_TEXT.sub(lambda m: f"{m[1]}{m[2]}****{_digits(m[4])}", text)
    return _LANDLINE.sub(lambda m: f"{m[1]}****{m[3]}", text)


def mask_email(email: str | None) -> str | None:
    """An e-mail fit to travel: its first character and its domain (zhang.san@example.cn → z***@example.cn).
    None and blank are None; masking twice is harmless."""
    email = (email or "").strip()
    if not email:
        return None
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}***@{domain}" if local else "***"


def mask_phone_number(phone: str | None) -> str | None:
    """A resident's phone field fit to travel: 139****1001 for a mobile, 010-****5678 for a landline, and
    for anything else (a local number, odd spellings) no more than its last digits. None and blank are
    None; masking twice is harmless."""
    if phone is None or not phone.strip():
        return None
    given = _COUNTRY_CODE.sub("", phone.strip().translate(_FULL_WIDTH))
    if "*" in given and not _DIGIT_RUN.search(given):
        return given  # masked already: masking twice is harmless
    masked = mask_personal(given)
    if len(_digits(masked)) <= len(_digits(given)) - 3 and not _DIGIT_RUN.search(masked):
        return masked
    digits = _digits(given)
    if len(digits) >= 11:
        return f"{digits[:3]}****{digits[-4:]}"
    if len(digits) >= 8:
        return f"****{digits[-4:]}"
    return f"****{digits[-2:]}" if len(digits) >= 5 else "****"


def mask_address(address: str) -> str:
    """A delivery's address fit for logs and views: 13900001001 → 139****1001, a landline as in free text;
    anything else keeps only its ends. An address masked already (an erased delivery's) stays as it is."""
    masked = mask_personal(address)
    if masked != address or "*" in address:
        return masked
    compact = _NOISE.sub("", address)
    if compact.isdigit() and len(compact) < 11:
        # A local number: its first digits would give most of it away.
        return f"****{compact[-4:]}" if len(compact) >= 8 else "****"
    return f"{compact[:3]}****{compact[-4:]}" if len(compact) >= 8 else "****"


def mask_name(name: str | None) -> str:
    """A resident's name fit to show: 李先生 → 李**, 欧阳娜娜 → 欧***; no name → (未留名). Masking twice is harmless."""
    name = (name or "").strip()
    if not name:
        return NO_NAME
    if name == NO_NAME or "*" in name:
        return name
    if len(name) == 1:
        return "*"
    return name[0] + "*" * min(len(name) - 1, 3)


# Fields of the contract that hold a resident's words or place (free text: a phone typed into them is masked).
_FREE_TEXT = frozenset({"description", "address", "text", "note", "comment", "result", "reason", "content"})


def mask_message(original: object) -> object:
    """The original with a resident's contact masked: `phone`, `email` wherever they are, the `name` beside a phone
    or e-mail (a reporter, a contact), phone numbers in free-text fields and in text that is not JSON. Ids, times
    and codes are left as they are, so the rejection still says which message it was."""
    if isinstance(original, str):
        return mask_personal(original)
    return _masked(original)


def _masked(value: object, key: str | None = None) -> object:
    if isinstance(value, dict):
        contact = "phone" in value or "email" in value
        return {k: (mask_name(v) if k == "name" and contact and isinstance(v, str) else _masked(v, k))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, key) for v in value]
    if isinstance(value, str):
        if key == "phone":
            return mask_phone_number(value)
        if key == "email":
            return mask_email(value)
        if key in _FREE_TEXT:
            return mask_personal(value)
    return value


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isascii() and ch.isdigit())

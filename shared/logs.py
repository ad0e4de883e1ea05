"""Logging for every service: one line per record, personal data masked.

Masking happens twice: a filter masks the message, the traceback and the stack of each record
(so any handler that shares the record sees them masked), and the formatter masks the whole line
it finally writes (so nothing the format adds — an exception's text, a library's message — can
carry a phone number past it). mask_personal() is the same masking for free text that leaves a
service (descriptions, reasons, comments); mask_phone_number() and mask_name() are for the
fields that hold a resident's contact.
"""
from __future__ import annotations

import logging
import re
import sys
from datetime import datetime
from typing import IO

from shared.clock import street_zone

# Full-width digits and signs (１３９…, ＋８６) are read as their ASCII forms before matching.
_FULL_WIDTH = str.maketrans({**{chr(0xFF10 + i): str(i) for i in range(10)}, "＋": "+"})
# Mainland mobile numbers: 11 digits starting 1[3-9], optionally +86/0086/86 before, and a space or
# dash anywhere between the digits ("139 0000 1001", "139-0000-1001", "1390000 1001").
_SEP = "[ \\-\u2010-\u2015\uff0d\u3000]"  # a space or a dash, ASCII or full-width
_MOBILE = re.compile(rf"(?<!\d)((?:(?:\+|00)?86{_SEP}?)?)(1[3-9]\d)((?:{_SEP}?\d){{4}})((?:{_SEP}?\d){{4}})(?!\d)")
# Landlines with an area code, the code optionally in brackets: 0632-3311234, (010)62345678, 010 6234 5678.
_LANDLINE = re.compile(rf"(?<!\d)([(（]?0\d{{2,3}}[)）]?{_SEP}?)(\d{{3,4}}){_SEP}?(\d{{4}})(?!\d)")
_DIGIT_RUN = re.compile(rf"\d(?:{_SEP}?\d){{4,}}")  # five or more digits in a row: too much of a number left
_COUNTRY_CODE = re.compile(rf"^(?:\+|00)?86{_SEP}?(?=1[3-9])")
NO_NAME = "(未留名)"


def mask_personal(text: str) -> str:
    """Mask every phone number in free text: 13900001001 → 139****1001, 0632-3311234 → 0632-****1234."""
    if not text:
        return text
    if any("\uff10" <= ch <= "\uff19" or ch == "＋" for ch in text):
        text = text.translate(_FULL_WIDTH)
    text = _MOBILE.sub(lambda m: f"{m[1]}{m[2]}****{_digits(m[4])}", text)
    return _LANDLINE.sub(lambda m: f"{m[1]}****{m[3]}", text)


# The name the services have always used; the same masking.
mask_phone = mask_personal


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


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isascii() and ch.isdigit())


class PhoneMaskingFilter(logging.Filter):
    """Masks phone numbers in the message, the traceback text and the stack of a record, whatever the
    arguments were; every handler formatting the record afterwards sees the masked text."""

    _plain = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_personal(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._plain.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_personal(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_personal(record.stack_info)
        return True


class StreetTimeFormatter(logging.Formatter):
    """Timestamps in ISO 8601 with the street's offset, whatever the machine's zone."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (logging's name)
        return datetime.fromtimestamp(record.created, street_zone()).isoformat(timespec="milliseconds")


class MaskingFormatter(StreetTimeFormatter):
    """Masks the whole formatted line — message, traceback and stack alike — as the last step."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_personal(super().format(record))


def log_handler(service: str, stream: IO[str] | None = None) -> logging.Handler:
    """The handler every service logs through: one line per record, street time, personal data masked."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(MaskingFormatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s"))
    handler.addFilter(PhoneMaskingFilter())
    return handler


def configure_logging(service: str, level: str = "INFO") -> None:
    """Set up the root logger once for a service process."""
    root = logging.getLogger()
    root.handlers[:] = [log_handler(service)]
    root.setLevel(level)
    for noisy in ("aiokafka", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

"""Logging for every service: one line per record, phone numbers masked."""
from __future__ import annotations

import logging
import re
from datetime import datetime

from shared.clock import street_zone

# Mainland mobile numbers (11 digits starting 1[3-9], optionally +86/86 and spaces or dashes
# between the groups) and landlines with area codes.
_PHONE = re.compile(
    r"(?<!\d)((?:\+?86[ -]?)?1[3-9]\d)[ -]?(\d{4})[ -]?(\d{4})(?!\d)"
    r"|(?<!\d)(0\d{2,3}-?)(\d{3,4})(\d{4})(?!\d)"
)


def mask_phone(text: str) -> str:
    """Replace the middle digits of every phone number in text: 13900001001 → 139****1001."""
    return _PHONE.sub(lambda m: f"{m[1]}****{m[3]}" if m[1] else f"{m[4]}****{m[6]}", text)


class PhoneMaskingFilter(logging.Filter):
    """Masks phone numbers in the final message, whatever the arguments were."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_phone(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class StreetTimeFormatter(logging.Formatter):
    """Timestamps in ISO 8601 with the street's offset, whatever the machine's zone."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (logging's name)
        return datetime.fromtimestamp(record.created, street_zone()).isoformat(timespec="milliseconds")


def configure_logging(service: str, level: str = "INFO") -> None:
    """Set up the root logger once for a service process."""
    handler = logging.StreamHandler()
    handler.setFormatter(StreetTimeFormatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s"))
    handler.addFilter(PhoneMaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

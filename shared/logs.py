"""Logging for every service: one line per record, personal data masked.

Masking happens twice: a filter masks the message, the traceback and the stack of each record
(so any handler that shares the record sees them masked), and the formatter masks the whole line
it finally writes (so nothing the format adds — an exception's text, a library's message — can
carry a phone number past it). What counts as a phone number, and how it is masked, is
shared/personal_data.py's: the same masking as free text that leaves a service.
"""
from __future__ import annotations

import logging
import sys
from datetime import datetime
from typing import IO

from shared.clock import street_zone
from shared.personal_data import mask_personal



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

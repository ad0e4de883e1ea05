"""Human case numbers: the day in the street's zone and a sequence, 20261127-0001."""
from __future__ import annotations

from datetime import date


def format_case_no(day: date, sequence: int) -> str:
    """The case number of the sequence-th case of the day (four digits, more when a day has more)."""
    if sequence < 1:
        raise ValueError("case sequence starts at 1")
    return f"{day:%Y%m%d}-{sequence:04d}"

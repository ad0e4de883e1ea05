"""Human case numbers: the day in the street's zone and a sequence, 20261127-0001."""
from __future__ import annotations

from datetime import date


def format_case_no(day: date, sequence: int) -> str:
    """The case number of the sequence-th case of the day (four digits, more when a day has more)."""
    if sequence < 1:
        raise ValueError("case sequence starts at 1")
    return f"{day:%Y%m%d}-{sequence:04d}"


# A block is reserved for about a second of reports: one statement on the day's counter row per block
# instead of one row lock held through every report's transaction. At a street's pace (a report every few
# minutes) that is a block of one, so a restart leaves no gap; at a city's burst, at most LARGEST_BLOCK.
LARGEST_BLOCK = 64


def block_size(taken_last_second: int, largest: int = LARGEST_BLOCK) -> int:
    """How many numbers to reserve next: as many as were taken in the last second, 1 to `largest`."""
    return max(1, min(largest, taken_last_second))

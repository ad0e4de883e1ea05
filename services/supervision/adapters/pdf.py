"""The Monday report as PDF: the weekly list rendered into HTML (Jinja2) and printed by WeasyPrint.

WeasyPrint needs pango and a Chinese font from Debian's packages (deploy/local/pdf.sh install).
"""
from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

_TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).resolve().parent.parent / "templates"),
                         autoescape=select_autoescape(["html", "j2"]))


def weekly_html(weekly: dict[str, Any]) -> str:
    """The weekly answer (GET /api/v1/reports/weekly) as a printable HTML page."""
    first, last = weekly["from"], weekly["to"]
    return _TEMPLATES.get_template("weekly.html.j2").render(
        **{k: v for k, v in weekly.items() if k not in ("from", "to", "as_of")},
        first=_day(first), last=_day(last), as_of=str(weekly["as_of"])[:16].replace("T", " "))


def _day(value: date | str) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def html_to_pdf(html: str) -> bytes:
    """PDF bytes of an HTML page (no outside resources: everything is in the page)."""
    from weasyprint import HTML  # imported here: loading pango costs a moment, only the PDF route needs it

    return HTML(string=html, base_url=None).write_pdf()


async def weekly_pdf(weekly: dict[str, Any]) -> bytes:
    """The weekly answer as PDF bytes, rendered off the event loop (it takes CPU for a moment)."""
    return await asyncio.to_thread(html_to_pdf, weekly_html(weekly))

"""The Monday report's HTML and PDF, from a weekly answer made by hand (no database)."""
from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from services.supervision.adapters.pdf import html_to_pdf, weekly_html

pytestmark = pytest.mark.unit

WEEKLY = {
    "community": "370402001001", "name": "龙头社区", "week": "2026-W48", "from": "2026-11-23", "to": "2026-11-29",
    "as_of": "2026-11-30T08:30:00+08:00", "total": {"reported": 2, "open": 1, "late": 1},
    "rows": [
        {"unit_grid": "3704020010010201", "name": "龙头社区2-1单元网格", "coordinator": "W004", "coordinator_name": "网格员004",
         "reported": 2, "open": 1, "late": 1, "reported_cases": ["20261124-0001", "20261125-0003"],
         "open_cases": ["20261125-0003"], "late_cases": ["20261125-0003"]},
        {"unit_grid": "3704020010010202", "name": "<b>龙头社区2-2</b>", "coordinator": None, "coordinator_name": None,
         "reported": 0, "open": 0, "late": 0, "reported_cases": [], "open_cases": [], "late_cases": []},
    ],
}


def test_the_page_names_the_community_the_week_and_every_case_and_escapes_names():
    html = weekly_html(WEEKLY)
    assert "龙头社区 周例会通报" in html and "2026-11-23 至 2026-11-29" in html and "2026-11-30 08:30" in html
    assert "20261124-0001、20261125-0003" in html
    assert "<b>龙头社区2-2</b>" not in html and "&lt;b&gt;" in html


def test_the_pdf_parses_and_holds_the_chinese_text_and_the_case_numbers():
    pdf = html_to_pdf(weekly_html(WEEKLY))
    assert pdf.startswith(b"%PDF-")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages).replace("\n", "")
    assert "龙头社区" in text and "周例会通报" in text and "网格员004" in text
    assert "20261124-0001" in text and "20261125-0003" in text
